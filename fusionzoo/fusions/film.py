"""FiLM: feature-wise linear modulation of one modality by the other (asymmetric)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fusionzoo.fusions._vector import VectorFusion
from fusionzoo.registry import register_fusion

CONDITIONS = ("text", "image")


@register_fusion
class FiLMFusion(VectorFusion):
    """Feature-wise linear modulation (Perez et al., AAAI 2018) of the pooled vectors.

    condition_on="text" (default):   z = γ(t) ⊙ v + β(t)
    condition_on="image":            z = γ(v) ⊙ t + β(v)
    γ(c) = W_γ c + b_γ,   β(c) = W_β c + b_β       (b_γ starts at 1, so z ≈ v + β(t) at init)

    Missing modality: the pooled vector of a missing modality is zeros, so a missing condition gives
    z = b_γ ⊙ x + b_β (a learned affine map of the present modality) and a missing modulated input
    gives z = β(c) (only the condition); the output stays finite either way.
    """

    name = "film"
    description = "FiLM: z = γ(t)⊙v + β(t), text modulates image (condition_on=image swaps roles)"

    def __init__(self, dim: int, *, condition_on: str = "text", pool: str = "mean") -> None:
        super().__init__(dim, pool=pool)
        if condition_on not in CONDITIONS:
            raise ValueError(f"condition_on must be one of {', '.join(CONDITIONS)}, got '{condition_on}'")
        self.condition_on = condition_on
        self.gamma = nn.Linear(dim, dim)
        self.beta = nn.Linear(dim, dim)
        with torch.no_grad():
            self.gamma.bias.fill_(1.0)

    def fuse(
        self, v: Tensor, t: Tensor, has_image: Tensor, has_text: Tensor
    ) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        condition, modulated = (t, v) if self.condition_on == "text" else (v, t)
        gamma = self.gamma(condition)
        fused = gamma * modulated + self.beta(condition)
        return fused, {}, {"gamma_mean": gamma.detach().mean(-1)}

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution

        return {"condition_on": CategoricalDistribution(list(CONDITIONS))}
