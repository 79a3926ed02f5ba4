"""EmbraceNet (Choi & Lee, Information Fusion 2019): stochastic per-feature modality selection."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fusionzoo.fusions._vector import VectorFusion
from fusionzoo.registry import register_fusion


@register_fusion
class EmbraceNet(VectorFusion):
    """Docking layers, then each output feature is taken from one modality drawn at random.

    docking:  d_v = ReLU(W_v v + b_v),   d_t = ReLU(W_t t + b_t)            ∈ R^D
    selection probabilities per sample (a missing modality gets 0):
        q = (π·has_image, (1 − π)·has_text),   p = q / Σ q     (π = ``image_prob``; p = (π, 1 − π) if Σq = 0)
    train:  for each feature k, r_k ~ Multinomial(1, p):   z_k = r_{k,v} d_{v,k} + r_{k,t} d_{t,k}
    eval:   the expectation, deterministic:                z = p_v d_v + p_t d_t

    The training output is an unbiased sample of the eval output (E[z_train] = z_eval). With one
    modality missing p is one-hot, so z is that modality's docking output in train and eval alike.
    GLAMI-1M's official baseline (mT5-small + ResNeXt-50 features) uses this fusion.
    """

    name = "embracenet"
    description = (
        "EmbraceNet: docking layers + per-feature multinomial modality selection (GLAMI-1M baseline)"
    )

    def __init__(self, dim: int, *, image_prob: float = 0.5, pool: str = "mean") -> None:
        super().__init__(dim, pool=pool)
        if not 0.0 < image_prob < 1.0:
            raise ValueError(f"image_prob must be in (0, 1), got {image_prob}")
        self.image_prob = image_prob
        self.image_dock = nn.Sequential(nn.Linear(dim, dim), nn.ReLU())
        self.text_dock = nn.Sequential(nn.Linear(dim, dim), nn.ReLU())

    def fuse(
        self, v: Tensor, t: Tensor, has_image: Tensor, has_text: Tensor
    ) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        prior = v.new_tensor([self.image_prob, 1.0 - self.image_prob])
        weights = torch.stack([has_image, has_text], dim=1).to(v.dtype) * prior
        weights = torch.where(weights.sum(1, keepdim=True) > 0, weights, prior.expand_as(weights))
        probs = weights / weights.sum(1, keepdim=True)  # (B, 2)
        docked = torch.stack([self.image_dock(v), self.text_dock(t)], dim=1)  # (B, 2, D)
        if self.training:
            choice = torch.multinomial(probs, v.shape[-1], replacement=True)  # (B, D) modality index
            selection = nn.functional.one_hot(choice, 2).transpose(1, 2).to(v.dtype)  # (B, 2, D)
        else:
            selection = probs.unsqueeze(-1)
        return (selection * docked).sum(1), {}, {"selection_probs": probs}

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import FloatDistribution

        return {"image_prob": FloatDistribution(0.2, 0.8)}
