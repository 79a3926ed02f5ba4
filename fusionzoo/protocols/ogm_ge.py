"""``ogm_ge``: on-the-fly gradient modulation with generalisation enhancement (Peng et al., CVPR 2022)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from fusionzoo.protocols._training import TrainingHook, TrainingProtocol, branch_parameters, masked_logits
from fusionzoo.protocols.base import check_rates, generator_for, register_protocol

__all__ = ["OGMGE", "modality_scores", "modulate_gradients", "modulation_coefficients"]


def modality_scores(logits: dict[str, Tensor], labels: Tensor) -> dict[str, float]:
    """``s_m = Σ_i softmax(ℓ_m(x_i))[y_i]``: how confidently each modality alone predicts the batch."""
    return {m: float(value.softmax(-1).gather(1, labels.view(-1, 1)).sum()) for m, value in logits.items()}


def modulation_coefficients(scores: dict[str, float], alpha: float) -> dict[str, float]:
    """``k_u = 1 − tanh(α · relu(ρ_u − 1))`` with ``ρ_u = s_u / s_other``; the weaker modality keeps 1."""
    image, text = max(scores["image"], 1e-12), max(scores["text"], 1e-12)
    ratios = {"image": image / text, "text": text / image}
    return {m: 1.0 - math.tanh(alpha * max(0.0, ratio - 1.0)) for m, ratio in ratios.items()}


def modulate_gradients(
    params: list[nn.Parameter], coefficient: float, noise: bool, generator: torch.Generator | None
) -> None:
    """In place: ``g ← k·g + h``, ``h ~ N(0, std(g)²)`` (``noise``; the element std of each gradient,
    as the authors' implementation estimates the SGD noise scale) or ``h = 0``."""
    for param in params:
        grad = param.grad
        if grad is None:
            continue
        scale = float(grad.float().std()) + 1e-8 if noise and grad.numel() > 1 else 0.0  # raw gradient's
        if coefficient != 1.0:
            grad.mul_(coefficient)
        if scale:
            sample = torch.randn(grad.shape, generator=generator, dtype=torch.float32)
            grad.add_(sample.to(grad.device, grad.dtype) * scale)


@register_protocol
class OGMGE(TrainingProtocol):
    """OGM-GE: slow down the dominant modality's branch, with noise that keeps it generalising.

    Per training batch, each modality's own decision ℓ_u (the model with the other modality masked out,
    no gradient; for concatenation with a linear classifier exactly the paper's ``W_u h_u + b/2``):

        s_u = Σ_i softmax(ℓ_u(x_i))_{y_i},   ρ_img = s_img / s_txt,   ρ_txt = 1 / ρ_img
        k_u = 1 − tanh(α · relu(ρ_u − 1))          (α: the level; the weaker modality keeps k = 1)
        g̃(θ_u) = k_u · g(θ_u) + h(θ_u),   h(θ_u) ~ N(0, σ²(g(θ_u)))      (GE; ``noise=false``: OGM)

    applied after ``backward()`` and before clipping and the optimiser step, to every parameter only
    modality u's branch uses: its projection, the fusion's branch parameters
    (``Fusion.branch_parameters``) and, when finetuning, its encoder. σ(g) is the standard deviation of
    the elements of that parameter's (unmodulated) gradient, as in the authors' code; the noise is drawn
    from a generator seeded by the run seed. α = 0 is the plain run. Needs a fusion with per-modality
    branches (``Fusion.modality_branches``). The history gets ``train_ogm_k_image``/``_text``: the mean
    coefficients of the epoch.
    """

    name = "ogm_ge"
    description = "OGM-GE (Peng et al. 2022): damp the dominant modality's gradients, plus GE noise"
    level_option = "alphas"
    level_bounds = (0.0, 10.0)
    test_config = {"alphas": [0.0, 0.5]}

    def __init__(self, *, alphas: tuple[float, ...] = (0.5,), noise: bool = True, seed: int = 0) -> None:
        self.alphas = check_rates(self.name, "alphas", alphas, *self.level_bounds)
        self.noise, self.seed = bool(noise), int(seed)

    def hook(self, level: float, trainer: Any) -> TrainingHook:
        self.check_fusion(trainer.config.fusion)
        return _OGMGEHook(self, self.check_level(level), trainer)


class _OGMGEHook(TrainingHook):
    def __init__(self, protocol: OGMGE, alpha: float, trainer: Any) -> None:
        self.alpha, self.noise, self.model = alpha, protocol.noise, trainer.model
        self.params = {m: branch_parameters(trainer.model, m) for m in ("image", "text")}
        self.generator = generator_for("ogm_ge", protocol.canonical, trainer.config.seed)
        self.coefficients = {"image": 1.0, "text": 1.0}

    def loss(
        self, batch: dict[str, Any], out: Any, total: Tensor, parts: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        scores = modality_scores(masked_logits(self.model, batch), batch["label"])
        self.coefficients = modulation_coefficients(scores, self.alpha)
        for modality, value in self.coefficients.items():
            parts[f"ogm_k_{modality}"] = torch.tensor(value, device=total.device)
        return total, parts

    def after_backward(self) -> None:
        for modality, params in self.params.items():
            modulate_gradients(params, self.coefficients[modality], self.noise, self.generator)
