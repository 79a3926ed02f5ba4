"""Learnable-query cross-attention — the "Q-transform" of BLIP-2's Q-Former and FLUID.

For learnable queries ``Q ∈ R^{l×D}`` and tokens ``X ∈ R^{N×D}`` one block computes (post-LayerNorm):

    A = softmax(Q W_Q (X W_K)ᵀ / √d) X W_V            (multi-head, padding keys masked out)
    H = LN(Q + A);   Q' = LN(H + FFN(H))

and :class:`QueryCrossAttention` stacks ``layers`` such blocks, feeding each block's output as the
next block's queries. A sample whose tokens are all masked gets no attention update (its queries
pass through the residual path), so its output stays finite.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fusionzoo.layers.pooling import any_real


def check_heads(dim: int, heads: int) -> None:
    """Raise a clear error when ``heads`` does not divide ``dim``."""
    if heads < 1 or dim % heads:
        raise ValueError(f"heads={heads} must be >= 1 and divide dim={dim}")


class QueryCrossAttentionBlock(nn.Module):
    """One post-LN block: queries cross-attend to tokens, then a feed-forward network."""

    def __init__(self, dim: int, heads: int = 4, ffn_mult: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        check_heads(dim, heads)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_attn = nn.LayerNorm(dim)
        hidden = max(1, int(dim * ffn_mult))
        self.ffn = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )
        self.norm_ffn = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: Tensor, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        has_tokens = any_real(mask, tokens.shape[0], tokens.device)
        key_padding = None
        if mask is not None:
            # rows without any real token would give softmax over nothing (NaN): let them attend to all,
            # then drop the update below.
            key_padding = ~(mask.bool() | ~has_tokens.unsqueeze(1))
        update, _ = self.attn(queries, tokens, tokens, key_padding_mask=key_padding, need_weights=False)
        update = update * has_tokens.to(update.dtype).view(-1, 1, 1)
        hidden = self.norm_attn(queries + self.dropout(update))
        return self.norm_ffn(hidden + self.dropout(self.ffn(hidden)))


class QueryCrossAttention(nn.Module):
    """``num_queries`` learnable queries distilled from a token sequence by ``layers`` blocks.

    ``forward(tokens (B, N, D), mask (B, N)) -> (B, num_queries, D)``.
    """

    def __init__(
        self,
        dim: int,
        num_queries: int,
        layers: int = 1,
        heads: int = 4,
        ffn_mult: float = 4.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num_queries < 1:
            raise ValueError(f"num_queries must be >= 1, got {num_queries}")
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * 0.02)
        self.blocks = nn.ModuleList(
            QueryCrossAttentionBlock(dim, heads=heads, ffn_mult=ffn_mult, dropout=dropout)
            for _ in range(layers)
        )

    def no_weight_decay(self) -> set[str]:
        """The learnable queries are embeddings: no weight decay (timm convention)."""
        return {"queries"}

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        out = self.queries.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        for block in self.blocks:
            out = block(out, tokens, mask)
        return out
