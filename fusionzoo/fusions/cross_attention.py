"""Cross-attention of a mean query over the two pooled modality vectors (published comparison)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fusionzoo.fusions._vector import VectorFusion
from fusionzoo.layers.attention import QueryCrossAttentionBlock
from fusionzoo.layers.pooling import masked_mean
from fusionzoo.registry import register_fusion


@register_fusion
class CrossAttentionFusion(VectorFusion):
    """A query built from the mean of the pooled vectors attends over the 2-token set {v, t}.

        S = [v; t] ∈ R^{2×D},   q = LN(mean(v, t))
        H = LN(q + MHA(q, S, S));   z = LN(H + FFN(H)) ∈ R^D

    (one post-LN :class:`~fusionzoo.layers.QueryCrossAttentionBlock`). A missing modality is masked
    out of S and of the mean, so q and the attention use the present one only.
    """

    name = "cross_attention"
    description = "query LN(mean(v,t)) cross-attends over {v, t}, FFN residual"

    def __init__(
        self, dim: int, *, heads: int = 4, ffn_mult: float = 4.0, dropout: float = 0.1, pool: str = "mean"
    ) -> None:
        super().__init__(dim, pool=pool)
        self.query_norm = nn.LayerNorm(dim)
        self.block = QueryCrossAttentionBlock(dim, heads=heads, ffn_mult=ffn_mult, dropout=dropout)

    def fuse(self, v: Tensor, t: Tensor, has_image: Tensor, has_text: Tensor) -> Tensor:
        pair = torch.stack([v, t], dim=1)
        present = torch.stack([has_image, has_text], dim=1)
        query = self.query_norm(masked_mean(pair, present)).unsqueeze(1)
        return self.block(query, pair, present).squeeze(1)

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        return {
            "ffn_mult": CategoricalDistribution([1.0, 2.0, 4.0]),
            "dropout": FloatDistribution(0.0, 0.5),
            "pool": CategoricalDistribution(["mean", "max", "cls"]),
        }
