"""Query self-attention in the Q-Former block: on for the BLIP-2-like qformer, off (unchanged) for FLUID."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from fusionzoo import registry
from fusionzoo.fusions import fluid as fluid_module
from fusionzoo.layers.attention import QueryCrossAttention, check_heads
from fusionzoo.layers.pooling import any_real


class _OldBlock(nn.Module):
    """The block as it was before query self-attention existed (a frozen copy, for bit-identity)."""

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
            key_padding = ~(mask.bool() | ~has_tokens.unsqueeze(1))
        update, _ = self.attn(queries, tokens, tokens, key_padding_mask=key_padding, need_weights=False)
        update = update * has_tokens.to(update.dtype).view(-1, 1, 1)
        hidden = self.norm_attn(queries + self.dropout(update))
        return self.norm_ffn(hidden + self.dropout(self.ffn(hidden)))


class _OldQueryCrossAttention(nn.Module):
    def __init__(self, dim, num_queries, layers=1, heads=4, ffn_mult=4.0, dropout=0.0, norm="post") -> None:
        super().__init__()
        assert norm == "post"  # the old block had post-LN only
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * 0.02)
        self.blocks = nn.ModuleList(_OldBlock(dim, heads, ffn_mult, dropout) for _ in range(layers))

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        out = self.queries.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        for block in self.blocks:
            out = block(out, tokens, mask)
        return out


def _fluid_output(monkeypatch, old: bool, train: bool):
    if old:
        monkeypatch.setattr(fluid_module, "QueryCrossAttention", _OldQueryCrossAttention)
    torch.manual_seed(0)
    fusion = registry.create_fusion("fluid:queries=4,layers=2,heads=2", 16).train(train)
    image, text = torch.randn(3, 5, 16), torch.randn(3, 4, 16)
    text_mask = torch.tensor([[True, True, False, False], [True] * 4, [False] * 4])
    torch.manual_seed(1)  # the same dropout masks in training
    out = fusion(image, text, None, text_mask)
    monkeypatch.undo()
    return fusion.state_dict(), out


@pytest.mark.parametrize("train", [False, True])
def test_fluid_is_bit_identical_to_the_block_without_self_attention(monkeypatch, train):
    old_state, old = _fluid_output(monkeypatch, old=True, train=train)
    new_state, new = _fluid_output(monkeypatch, old=False, train=train)
    assert list(old_state) == list(new_state)
    assert all(torch.equal(old_state[k], new_state[k]) for k in old_state)
    assert torch.equal(old.tokens, new.tokens)
    assert torch.equal(old.aux_losses["contrastive"], new.aux_losses["contrastive"])


def _cross_query_gradient(self_attention: bool) -> Tensor:
    torch.manual_seed(0)
    block = QueryCrossAttention(8, 3, layers=2, heads=2, self_attention=self_attention).eval()
    out = block(torch.randn(2, 5, 8))
    weights = torch.randn(8)  # a random read-out (the plain sum of a LayerNorm output is constant)
    (grad,) = torch.autograd.grad((out[:, 0] * weights).sum(), block.queries)
    return grad  # (3, 8): d(output of query 0) / d(query j)


def test_queries_interact_only_with_self_attention():
    without, with_self = _cross_query_gradient(False), _cross_query_gradient(True)
    assert without[0].abs().sum() > 0 and torch.equal(without[1:], torch.zeros_like(without[1:]))
    assert (with_self[1:].abs().sum(dim=1) > 0).all()


def test_qformer_uses_query_self_attention_by_default_and_fluid_does_not():
    qformer = registry.create_fusion("qformer:queries=2,layers=1,heads=2", 8)
    assert all(block.self_attention for block in qformer.qformer.blocks)
    assert (
        not registry.create_fusion("qformer:queries=2,layers=1,heads=2,self_attention=false", 8)
        .qformer.blocks[0]
        .self_attention
    )
    fluid = registry.create_fusion("fluid:queries=2,layers=1,heads=2", 8)
    blocks = [*fluid.image_qformer.blocks, *fluid.text_qformer.blocks, *fluid.bottleneck.blocks]
    assert not any(block.self_attention for block in blocks)
    assert not any("self_attn" in name for name, _ in fluid.named_parameters())


def test_the_self_attention_block_computes_self_then_cross_then_ffn():
    torch.manual_seed(0)
    block = QueryCrossAttention(8, 3, layers=1, heads=2, self_attention=True).eval().blocks[0]
    queries, tokens = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    s = block.norm_self(queries + block.self_attn(queries, queries, queries, need_weights=False)[0])
    h = block.norm_attn(s + block.attn(s, tokens, tokens, need_weights=False)[0])
    expected = block.norm_ffn(h + block.ffn(h))
    torch.testing.assert_close(block(queries, tokens), expected)
