"""FLUID options measured on real features: summary token, pre-LN blocks, duplicate-aware positives."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fusionzoo import registry
from fusionzoo.layers.attention import QueryCrossAttention
from fusionzoo.layers.contrastive import ClipContrastiveLoss, duplicate_groups
from fusionzoo.layers.pooling import masked_mean
from fusionzoo.train.model import FusionModel


def test_summary_is_cls_when_the_encoder_has_one_else_the_mean():
    image, text = torch.randn(2, 5, 8), torch.randn(2, 3, 8)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    for prefix, expected in ((1, image[:, :1]), (0, masked_mean(image, mask).unsqueeze(1))):
        fusion = registry.create_fusion(
            "fluid:qtransform=false,gating=false,bottleneck=false,contrastive=false", 8
        )
        fusion.configure_inputs(image_prefix_tokens=prefix, text_prefix_tokens=1)
        out = fusion.eval()(image, text, mask)
        assert torch.allclose(out.tokens, (expected + text[:, :1]) / 2)
    forced = registry.create_fusion("fluid:qtransform=false,summary=cls,contrastive=false", 8)
    forced.configure_inputs(image_prefix_tokens=0, text_prefix_tokens=0)
    assert forced.summary_from_cls == {"image": True, "text": True}
    with pytest.raises(registry.RegistryError, match="summary must be auto, cls or mean"):
        registry.create_fusion("fluid:summary=first", 8)


def test_the_model_tells_the_fusion_whether_the_tokens_start_with_cls():
    model = FusionModel(
        "fluid:qtransform=false", "mlp", image_dim=6, text_dim=4, dim=8, num_classes=3, image_prefix_tokens=0,
        text_prefix_tokens=1,
    )  # fmt: skip
    assert model.fusion.summary_from_cls == {"image": False, "text": True}


def test_pre_ln_block_follows_its_equation():
    torch.manual_seed(0)
    stack = QueryCrossAttention(8, 3, layers=1, heads=2, norm="pre").eval()
    block = stack.blocks[0]
    tokens = torch.randn(2, 4, 8)
    q = stack.queries.unsqueeze(0).expand(2, -1, -1)
    attn, _ = block.attn(block.norm_attn(q), tokens, tokens, need_weights=False)
    hidden = q + attn
    expected = stack.final_norm(hidden + block.ffn(block.norm_ffn(hidden)))
    assert torch.allclose(stack(tokens), expected, atol=1e-6)
    with pytest.raises(ValueError, match="norm must be 'post' or 'pre'"):
        QueryCrossAttention(8, 3, norm="middle")


def test_duplicate_groups_link_items_that_share_an_image_or_a_text():
    image = torch.randn(5, 2, 4)
    text = torch.randn(5, 3, 4)
    image[3] = image[0]  # items 0 and 3 share a photo
    text[4] = text[3]  # items 3 and 4 share a text: 0, 3, 4 are one group
    groups = duplicate_groups(image, text).tolist()
    assert groups[0] == groups[3] == groups[4]
    assert len({groups[0], groups[1], groups[2]}) == 3


def test_contrastive_positives_from_groups_are_supcon_over_the_other_modality():
    torch.manual_seed(1)
    u, v = torch.randn(4, 6), torch.randn(4, 6)
    groups = torch.tensor([0, 0, 1, 2])
    loss = ClipContrastiveLoss(0.5)(u, v, groups=groups)
    su, sv = F.normalize(u, dim=1), F.normalize(v, dim=1)

    def supcon(a, b):  # mean over positive pairs of -log softmax over the other modality
        logits = a @ b.T / 0.5
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        positive = groups[:, None] == groups[None, :]
        return -torch.stack([log_prob[i][positive[i]].mean() for i in range(4)]).mean()

    assert math.isclose(float(loss), float((supcon(su, sv) + supcon(sv, su)) / 2), rel_tol=1e-5)
    plain = ClipContrastiveLoss(0.5)(u, v)
    assert not math.isclose(float(loss), float(plain), rel_tol=1e-3)


def test_duplicate_positives_only_while_training():
    fusion = registry.create_fusion("fluid:queries=2,layers=1,heads=2,contrastive_positives=duplicates", 8)
    image, text = torch.randn(4, 3, 8), torch.randn(4, 2, 8)
    image[1] = image[0]
    train_loss = fusion.train()(image, text).aux_losses["contrastive"]
    assert torch.isfinite(train_loss)
    eval_loss = fusion.eval()(image, text).aux_losses["contrastive"]
    assert torch.isfinite(eval_loss)
