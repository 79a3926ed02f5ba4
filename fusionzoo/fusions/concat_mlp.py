"""Concatenation + MLP, the simplest late fusion."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from fusionzoo.fusions._vector import VectorFusion
from fusionzoo.layers.mlp import MLP
from fusionzoo.registry import register_fusion


@register_fusion
class ConcatMLP(VectorFusion):
    """Concatenate the pooled modalities and mix them with an MLP.

    z = MLP([v; t]),   v = pool(I), t = pool(T),   z ∈ R^D
    """

    name = "concat_mlp"
    description = "MLP([v; t]) on pooled image and text vectors"

    def __init__(
        self, dim: int, *, hidden_mult: float = 2.0, dropout: float = 0.1, pool: str = "mean"
    ) -> None:
        super().__init__(dim, pool=pool)
        self.mlp = MLP(2 * dim, max(1, int(dim * hidden_mult)), dim, dropout=dropout)

    def fuse(self, v: Tensor, t: Tensor, has_image: Tensor, has_text: Tensor) -> Tensor:
        return self.mlp(torch.cat([v, t], dim=-1))

    search_space_prefix = ""  # Optuna names hidden_mult, dropout

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        return {
            "hidden_mult": CategoricalDistribution([1.0, 2.0, 4.0]),
            "dropout": FloatDistribution(0.0, 0.5),
        }
