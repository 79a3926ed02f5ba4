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

    search_space_prefix = "head_"  # Optuna names head_hidden_mult, head_dropout

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        return {
            "hidden_mult": CategoricalDistribution([1.0, 2.0, 4.0]),
            "dropout": FloatDistribution(0.0, 0.5),
        }
