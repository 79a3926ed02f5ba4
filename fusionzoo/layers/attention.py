"""Learnable-query cross-attention — the "Q-transform" of BLIP-2's Q-Former and FLUID.

For learnable queries ``Q ∈ R^{l×D}`` and tokens ``X ∈ R^{N×D}`` one block computes (post-LayerNorm):

    S = LN(Q + SelfAttn(Q, Q, Q))                      only with ``self_attention=True``, else S = Q
    A = softmax(S W_Q (X W_K)ᵀ / √d) X W_V            (multi-head, padding keys masked out)
    H = LN(S + A);   Q' = LN(H + FFN(H))

and :class:`QueryCrossAttention` stacks ``layers`` such blocks, feeding each block's output as the
next block's queries. Without self-attention every query is distilled independently (its output
depends only on itself and X) — FLUID's Q-transform as the paper describes it. With it the queries
interact before reading X, as in BLIP-2's Q-Former block (self-attention → cross-attention → FFN, each
a post-LN residual; BLIP-2 inserts the cross-attention every other layer, here every block has one).
A sample whose tokens are all masked gets no cross-attention update (its queries pass through the
residual path), so its output stays finite.

``norm="pre"`` places the LayerNorms before each sub-layer instead (pre-LN, as in ViT/GPT-2):
``S = Q + SelfAttn(LN(Q))``, ``H = S + CrossAttn(LN(S), X)``, ``Q' = H + FFN(LN(H))``, and the stack
ends with one more LayerNorm. Pre-LN keeps an identity path through every block, which is usually
easier to optimise at higher learning rates; post-LN (the default) is what BLIP-2 and FLUID use.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fusionzoo.layers.pooling import any_real


def check_heads(dim: int, heads: int) -> None:
    """Raise a clear error when ``heads`` does not divide ``dim``."""
    if heads < 1 or dim % heads:
        raise ValueError(f"heads={heads} must be >= 1 and divide dim={dim}")


def encoder_layer(dim: int, heads: int, ffn_mult: float, dropout: float) -> nn.TransformerEncoderLayer:
    """One pre-LN self-attention layer (GELU FFN of ``ffn_mult``·D, batch first), as in ViT."""
    check_heads(dim, heads)
    return nn.TransformerEncoderLayer(
        dim,
        heads,
        dim_feedforward=max(1, int(dim * ffn_mult)),
        dropout=dropout,
        activation="gelu",
        batch_first=True,
        norm_first=True,
    )


def transformer_encoder(
    dim: int, heads: int, layers: int, ffn_mult: float, dropout: float, final_norm: bool = True
) -> nn.TransformerEncoder:
    """``layers`` copies of :func:`encoder_layer` (identical initial weights, torch's cloning), ending
    with a LayerNorm when ``final_norm`` (pre-LN stacks end normalised)."""
    if layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers}")
    layer = encoder_layer(dim, heads, ffn_mult, dropout)
    norm = nn.LayerNorm(dim) if final_norm else None
    return nn.TransformerEncoder(layer, layers, norm=norm, enable_nested_tensor=False)


def padding_keys(mask: Tensor) -> Tensor:
    """``key_padding_mask`` (``True`` = ignore) for a ``(B, N)`` real-token mask; a sample without any
    real token attends over all of its tokens instead (softmax over nothing would be NaN)."""
    return ~(mask | ~mask.any(1, keepdim=True))


class QueryCrossAttentionBlock(nn.Module):
    """One post-LN block: [queries self-attend,] queries cross-attend to tokens, then an FFN."""

    def __init__(
        self,
        dim: int,
        heads: int = 4,
        ffn_mult: float = 4.0,
        dropout: float = 0.0,
        self_attention: bool = False,
        norm: str = "post",
    ) -> None:
        super().__init__()
        check_heads(dim, heads)
        if norm not in ("post", "pre"):
            raise ValueError(f"norm must be 'post' or 'pre', got {norm!r}")
        self.pre_norm = norm == "pre"
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_attn = nn.LayerNorm(dim)
        hidden = max(1, int(dim * ffn_mult))
        self.ffn = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )
        self.norm_ffn = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.self_attention = self_attention
        if self_attention:  # created last: without it the parameters (and their init) are unchanged
            self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
            self.norm_self = nn.LayerNorm(dim)

    def forward(self, queries: Tensor, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        if self.pre_norm:
            return self._forward_pre(queries, tokens, mask)
        if self.self_attention:
            mixed, _ = self.self_attn(queries, queries, queries, need_weights=False)
            queries = self.norm_self(queries + self.dropout(mixed))
        update = self._cross(queries, tokens, mask)
        hidden = self.norm_attn(queries + self.dropout(update))
        return self.norm_ffn(hidden + self.dropout(self.ffn(hidden)))

    def _forward_pre(self, queries: Tensor, tokens: Tensor, mask: Tensor | None) -> Tensor:
        if self.self_attention:
            normed = self.norm_self(queries)
            mixed, _ = self.self_attn(normed, normed, normed, need_weights=False)
            queries = queries + self.dropout(mixed)
        hidden = queries + self.dropout(self._cross(self.norm_attn(queries), tokens, mask))
        return hidden + self.dropout(self.ffn(self.norm_ffn(hidden)))

    def _cross(self, queries: Tensor, tokens: Tensor, mask: Tensor | None) -> Tensor:
        """Cross-attention of the queries over the real tokens (zero update for a sample without any)."""
        has_tokens = any_real(mask, tokens.shape[0], tokens.device)
        key_padding = None
        if mask is not None:
            # rows without any real token would give softmax over nothing (NaN): let them attend to all,
            # then drop the update below.
            key_padding = ~(mask.bool() | ~has_tokens.unsqueeze(1))
        update, _ = self.attn(queries, tokens, tokens, key_padding_mask=key_padding, need_weights=False)
        return update * has_tokens.to(update.dtype).view(-1, 1, 1)


class QueryCrossAttention(nn.Module):
    """``num_queries`` learnable queries distilled from a token sequence by ``layers`` blocks.

    ``forward(tokens (B, N, D), mask (B, N)) -> (B, num_queries, D)``. ``self_attention``: the queries
    self-attend at the start of every block (BLIP-2's Q-Former); off by default (FLUID).
    """

    def __init__(
        self,
        dim: int,
        num_queries: int,
        layers: int = 1,
        heads: int = 4,
        ffn_mult: float = 4.0,
        dropout: float = 0.0,
        self_attention: bool = False,
        norm: str = "post",
    ) -> None:
        super().__init__()
        if num_queries < 1:
            raise ValueError(f"num_queries must be >= 1, got {num_queries}")
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * 0.02)
        self.blocks = nn.ModuleList(
            QueryCrossAttentionBlock(
                dim, heads=heads, ffn_mult=ffn_mult, dropout=dropout, self_attention=self_attention, norm=norm
            )
            for _ in range(layers)
        )
        self.final_norm = nn.LayerNorm(dim) if norm == "pre" else None  # pre-LN stacks end normalised

    def no_weight_decay(self) -> set[str]:
        """The learnable queries are embeddings: no weight decay (timm convention)."""
        return {"queries"}

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        out = self.queries.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        for block in self.blocks:
            out = block(out, tokens, mask)
        return self.final_norm(out) if self.final_norm is not None else out
