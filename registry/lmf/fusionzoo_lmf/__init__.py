"""Low-rank Multimodal Fusion (Liu et al., ACL 2018) as a fusionzoo plugin."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fusionzoo.fusions._vector import VectorFusion

__all__ = ["LowRankFusion"]


class LowRankFusion(VectorFusion):
    """Rank-``r`` factorised bilinear fusion of the pooled modalities.

    z = Σ_{i=1..r} λ_i (W_v^{(i)} [v; 1]) ⊙ (W_t^{(i)} [t; 1]) + b
    """

    description = "low-rank bilinear fusion Σ_i λ_i (W_v[v;1]) ⊙ (W_t[t;1]) (LMF, ACL 2018)"

    def __init__(self, dim: int, *, rank: int = 4, pool: str = "mean") -> None:
        super().__init__(dim, pool=pool)
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        self.image_factors = nn.Parameter(torch.randn(rank, dim + 1, dim) * (dim + 1) ** -0.5)
        self.text_factors = nn.Parameter(torch.randn(rank, dim + 1, dim) * (dim + 1) ** -0.5)
        self.rank_weights = nn.Parameter(torch.full((rank,), 1.0 / rank))
        self.bias = nn.Parameter(torch.zeros(dim))

    def fuse(self, v: Tensor, t: Tensor, has_image: Tensor, has_text: Tensor) -> Tensor:
        ones = v.new_ones(v.shape[0], 1)
        image_proj = torch.einsum("bi,rid->rbd", torch.cat([v, ones], -1), self.image_factors)
        text_proj = torch.einsum("bi,rid->rbd", torch.cat([t, ones], -1), self.text_factors)
        return torch.einsum("r,rbd->bd", self.rank_weights, image_proj * text_proj) + self.bias

    search_space_prefix = ""  # Optuna name rank

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import IntDistribution

        return {"rank": IntDistribution(1, 16, log=True)}
