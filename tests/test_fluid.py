"""FLUID: gate, ablation switches (paper Table 3), contrastive alignment, missing modalities."""

from __future__ import annotations

import itertools

import pytest
import torch

from fusionzoo import registry
from fusionzoo.layers.contrastive import ClipContrastiveLoss
from fusionzoo.testing import check_fusion

DIM, QUERIES = 16, 4


def make_fluid(**hp):
    hp = {"queries": QUERIES, "layers": 1, "heads": 2, "dropout": 0.0, **hp}
    return registry.create_fusion("fluid", DIM, **hp).eval()


def batch(b=3, ni=5, nt=6):
    g = torch.Generator().manual_seed(7)
    return torch.randn(b, ni, DIM, generator=g), torch.randn(b, nt, DIM, generator=g)


def test_gate_values_are_in_unit_interval_with_one_scalar_per_token():
    fluid = make_fluid()
    image, text = batch()
    out = fluid(image, text)
    gate = out.extras["gate"]
    assert gate.shape == (3, QUERIES)
    assert ((gate > 0) & (gate < 1)).all()
    assert out.tokens.shape == (3, 2, DIM)


def test_output_is_bottleneck_of_gated_blend_computed_by_hand():
    fluid = make_fluid()
    image, text = batch()
    with torch.no_grad():
        out = fluid(image, text)
        image_q, text_q = fluid.image_qformer(image), fluid.text_qformer(text)
        gate = torch.sigmoid(fluid.gate(torch.cat([image_q, text_q], -1)))
        expected = fluid.bottleneck(gate * image_q + (1 - gate) * text_q)
    torch.testing.assert_close(out.extras["gate"], gate.squeeze(-1))
    torch.testing.assert_close(out.tokens, expected)


def test_gating_false_is_the_bottleneck_of_the_plain_mean():
    fluid = make_fluid(gating=False)
    image, text = batch()
    image_mask = torch.tensor([[True] * 5, [True, True, True, False, False], [True] + [False] * 4])
    with torch.no_grad():
        out = fluid(image, text, image_mask)
        image_q, text_q = fluid.image_qformer(image, image_mask), fluid.text_qformer(text)
        expected = fluid.bottleneck((image_q + text_q) / 2)
    torch.testing.assert_close(out.tokens, expected)
    assert "gate" not in out.extras
    assert not any(name.startswith("gate") for name, _ in fluid.named_parameters())


def test_contrastive_switch():
    image, text = batch()
    on = make_fluid()(image, text)
    assert on.aux_losses["contrastive"].dim() == 0
    assert on.aux_losses["contrastive"].item() > 0
    off = make_fluid(contrastive=False)(image, text)
    assert "contrastive" not in off.aux_losses


def test_qtransform_false_uses_the_first_token_of_each_modality():
    fluid = make_fluid(qtransform=False, bottleneck=False)
    image, text = batch()
    out = fluid(image, text)
    assert out.extras["gate"].shape == (3, 1)
    assert out.tokens.shape == (3, 1, DIM)
    a = out.extras["gate"].unsqueeze(-1)
    torch.testing.assert_close(out.tokens, a * image[:, :1] + (1 - a) * text[:, :1])
    assert not any("qformer" in name for name, _ in fluid.named_parameters())
    with torch.no_grad():
        changed = image.clone()
        changed[:, 1:] += 5.0  # non-[CLS] tokens are ignored
        torch.testing.assert_close(fluid(changed, text).tokens, out.tokens)


def test_bottleneck_false_outputs_the_l_fused_tokens():
    image, text = batch()
    assert make_fluid(bottleneck=False)(image, text).tokens.shape == (3, QUERIES, DIM)
    assert make_fluid(bottleneck_queries=3)(image, text).tokens.shape == (3, 3, DIM)
    assert not any(n.startswith("bottleneck") for n, _ in make_fluid(bottleneck=False).named_parameters())


def test_everything_ablated_is_the_mean_of_the_cls_tokens():
    fluid = make_fluid(qtransform=False, gating=False, bottleneck=False, contrastive=False)
    image, text = batch()
    assert sum(p.numel() for p in fluid.parameters()) == 0
    torch.testing.assert_close(fluid(image, text).tokens, (image[:, :1] + text[:, :1]) / 2)


def test_contrastive_loss_is_lower_for_aligned_than_for_shuffled_pairs():
    # qtransform=False: the contrastive embeddings are the [CLS] tokens themselves
    fluid = make_fluid(qtransform=False)
    g = torch.Generator().manual_seed(3)
    shared = torch.randn(8, 1, DIM, generator=g)
    image = torch.cat([shared + 0.05 * torch.randn(8, 1, DIM, generator=g), torch.randn(8, 3, DIM)], 1)
    text = torch.cat([shared + 0.05 * torch.randn(8, 1, DIM, generator=g), torch.randn(8, 2, DIM)], 1)
    aligned = fluid(image, text).aux_losses["contrastive"]
    shuffled = fluid(image, text[torch.roll(torch.arange(8), 1)]).aux_losses["contrastive"]
    assert aligned < shuffled - 1.0


def test_clip_loss_matches_a_hand_written_symmetric_infonce_and_skips_missing_pairs():
    loss = ClipContrastiveLoss(temperature=0.1)
    u, v = torch.randn(5, DIM), torch.randn(5, DIM)

    def infonce(a, b):
        sim = torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(b, dim=-1).T / 0.1
        return torch.nn.functional.cross_entropy(sim, torch.arange(len(a)))

    torch.testing.assert_close(loss(u, v), (infonce(u, v) + infonce(v, u)) / 2)
    valid = torch.tensor([True, False, True, True, False])
    torch.testing.assert_close(loss(u, v, valid), loss(u[valid], v[valid]))


def test_missing_modality_forces_the_gate_and_leaves_the_sample_out_of_the_contrastive_loss():
    fluid = make_fluid()
    image, text = batch(b=4)
    image_mask = torch.ones(4, 5, dtype=torch.bool)
    text_mask = torch.ones(4, 6, dtype=torch.bool)
    image_mask[0] = False  # sample 0: text only
    text_mask[1] = False  # sample 1: image only
    with torch.no_grad():
        out = fluid(image, text, image_mask, text_mask)
        image_q, text_q = fluid.image_qformer(image, image_mask), fluid.text_qformer(text, text_mask)
        expected_loss = fluid.contrastive_loss(image_q[2:].mean(1), text_q[2:].mean(1))
    gate = out.extras["gate"]
    assert (gate[0] == 0).all() and (gate[1] == 1).all()
    assert ((gate[2:] > 0) & (gate[2:] < 1)).all()
    torch.testing.assert_close(out.aux_losses["contrastive"], expected_loss)
    with torch.no_grad():  # the missing modality's values do not matter
        changed = fluid(
            image + 3.0 * (~image_mask).unsqueeze(-1),
            text - 3.0 * (~text_mask).unsqueeze(-1),
            image_mask,
            text_mask,
        )
    torch.testing.assert_close(changed.tokens, out.tokens)


def test_missing_modality_with_gating_false_uses_the_present_one():
    fluid = make_fluid(gating=False)
    image, text = batch(b=2)
    text_mask = torch.tensor([[True] * 6, [False] * 6])
    with torch.no_grad():
        out = fluid(image, text, text_mask=text_mask)
        expected = fluid.bottleneck(fluid.image_qformer(image[1:]))
    torch.testing.assert_close(out.tokens[1:], expected)


def test_contrastive_gradient_reaches_the_query_transformers():
    fluid = make_fluid().train()
    image, text = batch()
    fluid(image, text).aux_losses["contrastive"].backward()
    assert fluid.image_qformer.queries.grad.abs().sum() > 0
    assert fluid.text_qformer.queries.grad.abs().sum() > 0
    assert fluid.gate.net[0].weight.grad is None  # the contrastive loss does not touch the gate


SWITCHES = [
    dict(zip(("contrastive", "qtransform", "gating", "bottleneck"), values, strict=True))
    for values in itertools.product([True, False], repeat=4)
    if any(values[1:])  # with qtransform, gating and bottleneck all off FLUID has no parameters
]


@pytest.mark.parametrize("switches", SWITCHES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_every_ablation_meets_the_contract(switches):
    check_fusion("fluid", queries=QUERIES, layers=1, **switches)


def test_declared_metadata():
    cls = registry.get_fusion_class("fluid")
    assert cls.kind == "token" and cls.default_head == "moe"
    fluid = registry.create_fusion("fluid:gating=false,queries=8", 32)
    assert fluid.image_qformer.queries.shape == (8, 32) and not hasattr(fluid, "gate")
