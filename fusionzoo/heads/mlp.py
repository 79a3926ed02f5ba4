"""MLP head: pool over tokens, then an MLP."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from fusionzoo.interface import Head, HeadOutput
from fusionzoo.layers.mlp import MLP
from fusionzoo.layers.pooling import POOL_MODES, pool_tokens
from fusionzoo.registry import register_head


@register_head
class MLPHead(Head):
    """``logits = MLP(pool_n(x_n))`` with ``pool = mean | max | cls`` over the real tokens."""

    name = "mlp"
    description = "pool over tokens → MLP (Linear-GELU-Dropout-Linear)"

    def __init__(
        self,
        dim: int,
        num_classes: int,
        *,
        hidden_mult: float = 2.0,
        dropout: float = 0.1,
        pool: str = "mean",
    ) -> None:
        super().__init__(dim, num_classes)
        if pool not in POOL_MODES:
            raise ValueError(f"pool must be one of {', '.join(POOL_MODES)}, got '{pool}'")
        self.pool = pool
        self.mlp = MLP(dim, max(1, int(dim * hidden_mult)), num_classes, dropout=dropout, layer_norm=True)

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> HeadOutput:
        return HeadOutput(logits=self.mlp(pool_tokens(tokens, mask, self.pool)))

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            "hidden_mult": trial.suggest_categorical("head_hidden_mult", [1.0, 2.0, 4.0]),
            "dropout": trial.suggest_float("head_dropout", 0.0, 0.5),
        }
