"""The training objective: ``L = λ_ce·CE + Σ_k λ_k·aux_k`` over every aux loss the fusion and head return.

λ per name comes from ``RunConfig.loss_weights`` (``--loss-weights contrastive=0.333,load_balance=0.333``);
a name without a weight gets 1/3 with ``paper_loss`` if it is one of the paper's three terms (FLUID:
λ1·CE + λ2·contrastive + λ3·load_balance, all 1/3), else the default its plugin declares in
``aux_loss_weights`` (the MoE head: load_balance 0.01, router_z 0.001), else 1. So under ``paper_loss``
the MoE head's ``router_z`` keeps 0.001 (at 1/3 it pins the router). CE optionally uses label smoothing
and inverse-frequency class weights (for GLAMI's long tail).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LossComposer", "aux_loss_names", "check_loss_weights", "class_weights_from_labels"]


def class_weights_from_labels(labels: np.ndarray, num_classes: int) -> Tensor:
    """Inverse-frequency weights ``w_c = N / (C_present · n_c)`` (mean 1 over the classes present).

    A class absent from training gets weight 0 (it cannot be learned and must not blow up the loss).
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes, dtype=np.float64)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


class LossComposer:
    """``composer(logits, labels, aux_losses) -> (total, parts)``.

    ``parts`` maps ``"ce"`` and each aux name to its *unweighted* value (detached), for logging.
    ``weight_of(name)`` gives λ for a name (``"ce"`` or an aux loss).
    """

    def __init__(
        self,
        weight_of: Callable[[str], float],
        label_smoothing: float = 0.0,
        class_weights: Tensor | None = None,
    ) -> None:
        self.weight_of = weight_of
        self.label_smoothing = float(label_smoothing)
        self.class_weights = class_weights

    @classmethod
    def from_config(
        cls,
        config,  # noqa: ANN001
        class_weights: Tensor | None = None,
        aux_defaults: Mapping[str, float] | None = None,
    ) -> LossComposer:
        """λ from ``config`` (:meth:`RunConfig.loss_weight`): explicit weights, then 1/3 for the paper's
        terms under ``paper_loss``, then ``aux_defaults`` (the plugins' ``aux_loss_weights``), then 1."""
        defaults = dict(aux_defaults or {})

        def weight_of(name: str) -> float:
            return config.loss_weight(name, defaults.get(name, 1.0))

        return cls(weight_of, config.label_smoothing, class_weights)

    def to(self, device: torch.device | str) -> LossComposer:
        if self.class_weights is not None:
            self.class_weights = self.class_weights.to(device)
        return self

    def __call__(
        self, logits: Tensor, labels: Tensor, aux_losses: Mapping[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        ce = F.cross_entropy(
            logits.float(), labels, weight=self.class_weights, label_smoothing=self.label_smoothing
        )
        total = self.weight_of("ce") * ce
        parts = {"ce": ce.detach()}
        for name in sorted(aux_losses):
            value = aux_losses[name].float()
            weight = self.weight_of(name)
            if weight:
                total = total + weight * value
            parts[name] = value.detach()
        return total, parts


def aux_loss_names(fusion: torch.nn.Module, head: torch.nn.Module, dim: int) -> tuple[str, ...]:
    """The names of the aux losses ``fusion`` + ``head`` return in training (the fusion's first), found
    with one forward pass on random tokens (4 rows, 3 image and 5 text tokens of width ``dim``)."""
    fusion.train()
    head.train()
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(4, 3, dim, generator=generator)
    text = torch.randn(4, 5, dim, generator=generator)
    with torch.no_grad():
        fused = fusion(image, text)
        out = head(fused.tokens, fused.mask)
    return tuple(dict.fromkeys([*fused.aux_losses, *out.aux_losses]))


def check_loss_weights(weights: Mapping[str, float], aux_names: Iterable[str]) -> None:
    """``ValueError`` naming every λ of ``weights`` that no loss of ``aux_names`` (or ``ce``) takes,
    with the close match and the valid names (a misspelt ``contrastve=0.9`` would weigh nothing)."""
    from fusionzoo.registry import did_you_mean

    valid = ["ce", *sorted(set(aux_names) - {"ce"})]
    unknown = [name for name in weights if name not in valid]
    if unknown:
        named = ", ".join(f"'{name}'{did_you_mean(name, valid)}" for name in unknown)
        raise ValueError(
            f"--loss-weights / [train] loss_weights: no run of this grid has a loss named {named}. "
            f"Its losses: {', '.join(valid)} (ce: the classification loss; the others come from the "
            "fusions and heads of the grid)"
        )
