"""Shared building blocks reused across fusions and heads (one implementation each)."""

from fusionzoo.layers.attention import QueryCrossAttention, QueryCrossAttentionBlock
from fusionzoo.layers.contrastive import ClipContrastiveLoss
from fusionzoo.layers.mlp import MLP
from fusionzoo.layers.pooling import POOL_MODES, masked_max, masked_mean, pool_tokens

__all__ = [
    "MLP",
    "POOL_MODES",
    "ClipContrastiveLoss",
    "QueryCrossAttention",
    "QueryCrossAttentionBlock",
    "masked_max",
    "masked_mean",
    "pool_tokens",
]
