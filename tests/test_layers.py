"""Math of the shared blocks in fusionzoo.layers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusionzoo.layers import ClipContrastiveLoss, QueryCrossAttention, masked_max, masked_mean, pool_tokens


def _clip_reference(image, text, temperature):
    a, b = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    logits = a @ b.T / temperature
    target = torch.arange(len(a))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


@pytest.mark.parametrize("batch", [2, 7, 64])
def test_clip_loss_equals_symmetric_cross_entropy(batch):
    image, text = torch.randn(batch, 16), torch.randn(batch, 16)
    loss = ClipContrastiveLoss(temperature=0.07)(image, text)
    torch.testing.assert_close(loss, _clip_reference(image, text, 0.07))


def test_clip_loss_leaves_out_invalid_pairs_and_needs_two():
    image, text = torch.randn(5, 8, requires_grad=True), torch.randn(5, 8)
    valid = torch.tensor([True, False, True, True, False])
    loss = ClipContrastiveLoss(0.1)(image, text, valid)
    torch.testing.assert_close(loss, _clip_reference(image[valid], text[valid], 0.1))
    single = ClipContrastiveLoss(0.1)(image, text, torch.tensor([True, False, False, False, False]))
    assert single.item() == 0.0 and single.requires_grad


def test_clip_loss_prefers_aligned_pairs():
    image = torch.randn(32, 16)
    loss = ClipContrastiveLoss(0.07)
    assert loss(image, image + 0.01 * torch.randn(32, 16)) < loss(image, image[torch.randperm(32)])


def test_clip_loss_rejects_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        ClipContrastiveLoss(0.0)


def test_masked_pooling_ignores_padding_and_zeroes_empty_rows():
    tokens = torch.tensor([[[1.0], [3.0], [100.0]], [[5.0], [7.0], [9.0]]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    torch.testing.assert_close(masked_mean(tokens, mask), torch.tensor([[2.0], [0.0]]))
    torch.testing.assert_close(masked_max(tokens, mask), torch.tensor([[3.0], [0.0]]))
    torch.testing.assert_close(pool_tokens(tokens, mask, "cls"), torch.tensor([[1.0], [0.0]]))
    with pytest.raises(ValueError, match="unknown pool mode"):
        pool_tokens(tokens, mask, "median")


def test_query_cross_attention_ignores_padded_tokens_and_survives_empty_rows():
    block = QueryCrossAttention(8, num_queries=3, layers=2, heads=2).eval()
    tokens, mask = torch.randn(2, 5, 8), torch.tensor([[True, True, True, False, False], [False] * 5])
    out = block(tokens, mask)
    changed = tokens.clone()
    changed[0, 3:] = 1e3
    torch.testing.assert_close(block(changed, mask)[0], out[0])
    assert out.shape == (2, 3, 8) and torch.isfinite(out).all()
