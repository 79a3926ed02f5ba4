"""cross_attention, early_fusion, shomr, qformer: equations, masking, routing, determinism."""

from __future__ import annotations

import pytest
import torch

from fusionzoo import registry
from fusionzoo.layers.pooling import masked_mean
from fusionzoo.testing import check_fusion

DIM = 16


def build(spec, **hp):
    return registry.create_fusion(spec, DIM, **{"dropout": 0.0, **hp}).eval()


def batch(b=4, ni=5, nt=6, seed=11):
    g = torch.Generator().manual_seed(seed)
    image, text = torch.randn(b, ni, DIM, generator=g), torch.randn(b, nt, DIM, generator=g)
    lengths_i, lengths_t = torch.tensor([5, 3, 1, 4])[:b], torch.tensor([6, 2, 4, 1])[:b]
    image_mask = torch.arange(ni) < lengths_i.unsqueeze(1)
    text_mask = torch.arange(nt) < lengths_t.unsqueeze(1)
    return image, text, image_mask, text_mask


def repad(image, text, image_mask, text_mask, value=7.0):
    """The same batch with different values in every padded position."""
    return (
        image.masked_fill(~image_mask.unsqueeze(-1), value),
        text.masked_fill(~text_mask.unsqueeze(-1), -value),
    )


# ------------------------------------------------------------------------------------------ early_fusion
@pytest.mark.parametrize("output", ["tokens", "cls"])
def test_early_fusion_ignores_padded_token_values(output):
    fusion = build("early_fusion", layers=2, heads=2, output=output)
    image, text, image_mask, text_mask = batch()
    with torch.no_grad():
        out = fusion(image, text, image_mask, text_mask)
        again = fusion(*repad(image, text, image_mask, text_mask), image_mask, text_mask)
        unmasked = fusion(image, text)
    torch.testing.assert_close(again.tokens, out.tokens)
    assert not torch.allclose(unmasked.tokens, out.tokens)  # the mask does change the result


def test_early_fusion_tokens_output_carries_the_concatenated_mask_and_zero_padding():
    fusion = build("early_fusion", layers=1, heads=2)
    image, text, image_mask, text_mask = batch()
    out = fusion(image, text, image_mask, text_mask)
    assert out.tokens.shape == (4, 11, DIM)
    assert torch.equal(out.mask, torch.cat([image_mask, text_mask], 1))
    assert (out.tokens[~out.mask] == 0).all()
    assert (out.tokens[out.mask].abs().sum(-1) > 0).all()


def test_early_fusion_cls_output_is_one_token_and_sees_both_modalities():
    fusion = build("early_fusion", layers=1, heads=2, output="cls")
    image, text, image_mask, text_mask = batch()
    with torch.no_grad():
        out = fusion(image, text, image_mask, text_mask)
        other_text = fusion(image, text.flip(-1), image_mask, text_mask)
    assert out.tokens.shape == (4, 1, DIM) and out.mask is None
    assert not torch.allclose(out.tokens, other_text.tokens)


def test_early_fusion_modality_type_embeddings_distinguish_the_modalities():
    fusion = build("early_fusion", layers=1, heads=2, output="cls")
    image, text, _, _ = batch(ni=4, nt=4)
    with torch.no_grad():
        fusion.concat.type_embeddings.copy_(torch.randn(2, DIM))
        assert not torch.allclose(fusion(image, text).tokens, fusion(text, image).tokens)
        fusion.concat.type_embeddings.zero_()  # without them the encoder is permutation invariant
        torch.testing.assert_close(fusion(image, text).tokens, fusion(text, image).tokens)


def test_early_fusion_sample_without_any_token_is_finite_and_fully_masked():
    fusion = build("early_fusion", layers=1, heads=2)
    image, text, image_mask, text_mask = batch()
    image_mask[2], text_mask[2] = False, False
    out = fusion(image, text, image_mask, text_mask)
    assert torch.isfinite(out.tokens).all()
    assert not out.mask[2].any()


# --------------------------------------------------------------------------------------- cross_attention
def test_cross_attention_equals_its_equation():
    fusion = build("cross_attention", heads=2)
    image, text, image_mask, text_mask = batch()
    with torch.no_grad():
        out = fusion(image, text, image_mask, text_mask)
        v, t = masked_mean(image, image_mask), masked_mean(text, text_mask)
        query = fusion.query_norm((v + t) / 2).unsqueeze(1)
        expected = fusion.block(query, torch.stack([v, t], 1))
    assert out.tokens.shape == (4, 1, DIM)
    torch.testing.assert_close(out.tokens, expected)


def test_cross_attention_uses_only_the_present_modality():
    fusion = build("cross_attention", heads=2)
    image, text, image_mask, text_mask = batch()
    text_mask[1] = False
    with torch.no_grad():
        out = fusion(image, text, image_mask, text_mask)
        changed = fusion(image, text + 5.0, image_mask, text_mask)
        v = masked_mean(image[1:2], image_mask[1:2])
        expected = fusion.block(fusion.query_norm(v).unsqueeze(1), v.unsqueeze(1))
    torch.testing.assert_close(changed.tokens[1], out.tokens[1])
    assert not torch.allclose(changed.tokens[0], out.tokens[0])
    torch.testing.assert_close(out.tokens[1:2], expected)


# ------------------------------------------------------------------------------------------------ shomr
def test_shomr_soft_confidences_weight_the_query():
    fusion = build("shomr", heads=2)
    image, text, image_mask, text_mask = batch()
    text_mask[3] = False
    with torch.no_grad():
        out = fusion(image, text, image_mask, text_mask)
        v, t = masked_mean(image, image_mask), masked_mean(text, text_mask)
        alpha = out.extras["confidence"]
        scores = torch.cat([fusion.confidence[0](v), fusion.confidence[1](t)], 1)
        query = alpha[:, :1] * v + alpha[:, 1:] * t
        expected = fusion.block(query[:3].unsqueeze(1), torch.stack([query, v, t], 1)[:3])
    assert alpha.shape == (4, 2)
    torch.testing.assert_close(alpha.sum(1), torch.ones(4))
    torch.testing.assert_close(alpha[:3], scores[:3].softmax(-1))
    assert alpha[3].tolist() == [1.0, 0.0]
    torch.testing.assert_close(out.tokens[:3, 0], expected[:, 0])


def test_shomr_hard_is_argmax_in_eval_and_identical_across_calls():
    fusion = build("shomr", mode="hard", heads=2)
    image, text, image_mask, text_mask = batch()
    with torch.no_grad():
        first = fusion(image, text, image_mask, text_mask)
        second = fusion(image, text, image_mask, text_mask)
    assert torch.equal(first.tokens, second.tokens)
    probs = first.extras["router_probs"]
    assert probs.shape == (4, 3)
    torch.testing.assert_close(probs.sum(1), torch.ones(4))
    assert torch.equal(first.extras["route"], probs.argmax(1))


@pytest.mark.parametrize("route", [0, 1, 2])
def test_shomr_hard_route_output_matches_the_chosen_path(route):
    fusion = build("shomr", mode="hard", heads=2)
    with torch.no_grad():  # force the route through the router's output bias
        fusion.router.net[-1].bias.copy_(torch.full((3,), -1e4).index_fill(0, torch.tensor(route), 1e4))
        image, text, _, _ = batch()
        out = fusion(image, text)
        v, t = image.mean(1), text.mean(1)
        query = [v, t, (v + t) / 2][route]
        allowed = torch.tensor([[True, False], [False, True], [True, True]])[route].expand(4, 2)
        expected = fusion._attend(query, v, t, allowed)
    assert (out.extras["route"] == route).all()
    torch.testing.assert_close(out.tokens[:, 0], expected)
    if route == 0:  # vision-only path ignores the text entirely
        torch.testing.assert_close(fusion(image, text.flip(-1)).tokens, out.tokens)


def test_shomr_hard_samples_in_training_and_never_routes_to_a_missing_modality():
    fusion = registry.create_fusion("shomr", DIM, mode="hard", heads=2, dropout=0.0).train()
    with torch.no_grad():  # strongly prefer "both" so that the masking has something to override
        fusion.router.net[-1].bias.copy_(torch.tensor([0.0, 0.0, 3.0]))
    image, text, image_mask, text_mask = batch()
    image_mask[0], text_mask[1] = False, False
    routes = torch.stack([fusion(image, text, image_mask, text_mask).extras["route"] for _ in range(60)])
    assert (routes[:, 0] == 1).all()  # no image: text only
    assert (routes[:, 1] == 0).all()  # no text: vision only
    assert len(set(routes[:, 2].tolist())) > 1  # sampled, not argmax, in training
    probs = fusion(image, text, image_mask, text_mask).extras["router_probs"]
    assert probs[0, 0] == 0 and probs[0, 2] == 0 and probs[1, 1] == 0 and probs[1, 2] == 0


def test_shomr_hard_router_gets_a_straight_through_gradient():
    fusion = registry.create_fusion("shomr", DIM, mode="hard", heads=2).train()
    image, text, _, _ = batch()
    fusion(image, text).tokens.pow(2).sum().backward()
    assert fusion.router.net[0].weight.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------- qformer
def test_qformer_distils_the_masked_concatenation():
    fusion = build("qformer", queries=3, layers=1, heads=2)
    image, text, image_mask, text_mask = batch()
    with torch.no_grad():
        out = fusion(image, text, image_mask, text_mask)
        again = fusion(*repad(image, text, image_mask, text_mask), image_mask, text_mask)
        tokens, mask = fusion.concat(image, text, image_mask, text_mask)
        expected = fusion.qformer(tokens, mask)
    assert out.tokens.shape == (4, 3, DIM) and out.aux_losses == {}
    torch.testing.assert_close(again.tokens, out.tokens)
    torch.testing.assert_close(out.tokens, expected)
    torch.testing.assert_close(tokens[:, :5], image + fusion.concat.type_embeddings[0])


# ------------------------------------------------------------------------------------------- contracts
@pytest.mark.parametrize(
    "spec",
    [
        "shomr:mode=hard",
        "shomr:pool=max",
        "early_fusion:layers=1,output=cls",
        "cross_attention:pool=cls",
        "qformer:queries=2,layers=2",
    ],
)
def test_variants_meet_the_contract(spec):
    check_fusion(spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("shomr:mode=medium", "mode"),
        ("early_fusion:output=all", "output"),
        ("early_fusion:heads=3", "heads"),
        ("cross_attention:pool=sum", "pool"),
    ],
)
def test_bad_options_are_named(spec, message):
    with pytest.raises(ValueError, match=message):
        registry.create_fusion(spec, DIM)
