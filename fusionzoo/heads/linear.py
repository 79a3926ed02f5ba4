"""Linear head: masked mean over tokens, then one linear layer."""

from __future__ import annotations

from torch import Tensor, nn

from fusionzoo.interface import Head, HeadOutput
from fusionzoo.layers.pooling import masked_mean
from fusionzoo.registry import register_head


@register_head
class LinearHead(Head):
    """``logits = W · mean_n(x_n) + b`` over the real tokens."""

    name = "linear"
    description = "masked mean over tokens → Linear"

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__(dim, num_classes)
        self.proj = nn.Linear(dim, num_classes)

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> HeadOutput:
        return HeadOutput(logits=self.proj(masked_mean(tokens, mask)))
