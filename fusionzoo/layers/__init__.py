"""Shared building blocks reused across fusions and heads (one implementation each)."""

from fusionzoo.layers.attention import QueryCrossAttention, QueryCrossAttentionBlock
from fusionzoo.layers.contrastive import ClipContrastiveLoss
from fusionzoo.layers.mlp import MLP
from fusionzoo.layers.modality import ModalityConcat
from fusionzoo.layers.moe import ExpertMLPs, load_balance_loss, router_z_loss
from fusionzoo.layers.pooling import POOL_MODES, masked_max, masked_mean, pool_tokens
from fusionzoo.layers.routing import hard_route, masked_logits

__all__ = [
    "MLP",
    "POOL_MODES",
    "ClipContrastiveLoss",
    "ExpertMLPs",
    "ModalityConcat",
    "QueryCrossAttention",
    "QueryCrossAttentionBlock",
    "hard_route",
    "load_balance_loss",
    "masked_max",
    "masked_logits",
    "masked_mean",
    "pool_tokens",
    "router_z_loss",
]
