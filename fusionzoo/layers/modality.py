"""Token concatenation of the two modalities with learned modality-type embeddings.

    X = [I + e_image ; T + e_text] ∈ R^{(Ni+Nt)×D},   mask = [m_I ; m_T]

Used by the single-stream baselines (early fusion, the shared-Q-Former "Modified BLIP-2") so that one
encoder can tell image tokens from text tokens. ``join_streams`` is the output of the two-stream
fusions (``mult``, ``mbt``): both streams' tokens with their masks, padding zeroed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fusionzoo.layers.pooling import mask_or_ones


class ModalityConcat(nn.Module):
    """``forward(image (B,Ni,D), text (B,Nt,D), image_mask, text_mask) -> (tokens (B,Ni+Nt,D), mask)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.type_embeddings = nn.Parameter(torch.randn(2, dim) * 0.02)

    def no_weight_decay(self) -> set[str]:
        """Type embeddings: no weight decay (timm convention)."""
        return {"type_embeddings"}

    def forward(
        self, image: Tensor, text: Tensor, image_mask: Tensor | None = None, text_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        tokens = torch.cat([image + self.type_embeddings[0], text + self.type_embeddings[1]], dim=1)
        mask = torch.cat([mask_or_ones(image, image_mask), mask_or_ones(text, text_mask)], dim=1)
        return tokens, mask


def join_streams(streams: Sequence[Tensor], masks: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Output tokens of two-stream fusions: ``[S_1; S_2; …]`` with mask ``[m_1; m_2; …]``, padding zeroed."""
    tokens, mask = torch.cat(list(streams), dim=1), torch.cat(list(masks), dim=1)
    return tokens.masked_fill(~mask.unsqueeze(-1), 0.0), mask
