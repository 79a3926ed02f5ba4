"""late_fusion, tfn, mult, mbt: each one's defining equation recomputed on tiny inputs from its weights,
masking and missing modalities, and the decision-level path of FusionModel (FusionOutput.decisions)."""

from __future__ import annotations

import math

import pytest
import torch
from test_attention_fusions import DIM, batch, repad  # (B=4, Ni=5, Nt=6, D=16) with padding
from torch import nn

from fusionzoo import registry
from fusionzoo.interface import Fusion, FusionOutput
from fusionzoo.testing import ContractError, check_fusion
from fusionzoo.train.model import FusionModel

D, C = DIM, 5


def build(spec: str, **hp):
    torch.manual_seed(0)
    return registry.create_fusion(spec, D, **{"dropout": 0.0, **hp}).eval()


def masked_mean(x, m):
    return (x * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True)


# ------------------------------------------------------------------------------------------ late_fusion
def late_model(combine: str, head: str = "mlp") -> FusionModel:
    torch.manual_seed(0)
    model = FusionModel(
        f"late_fusion:combine={combine},dropout=0.0",
        head,
        image_dim=D,
        text_dim=D,
        dim=D,
        num_classes=C,
    ).eval()
    if combine == "learned":
        with torch.no_grad():
            model.fusion.modality_logits.copy_(torch.tensor([0.7, -0.4]))  # away from the uniform init
    return model


def unimodal_decisions(model: FusionModel, image, text, image_mask, text_mask):
    """ℓ_img, ℓ_txt: the head applied to each branch output on its own."""
    fused = model.fusion(model.image_proj(image), model.text_proj(text), image_mask, text_mask)
    return model.head(fused.tokens[:, :1]).logits, model.head(fused.tokens[:, 1:]).logits


def test_late_fusion_tokens_are_the_per_modality_branches():
    fusion = build("late_fusion:hidden_mult=1.0")
    image, text, image_mask, text_mask = batch()
    out = fusion(image, text, image_mask, text_mask)
    torch.testing.assert_close(out.tokens[:, 0], fusion.image_branch(masked_mean(image, image_mask)))
    torch.testing.assert_close(out.tokens[:, 1], fusion.text_branch(masked_mean(text, text_mask)))
    assert out.mask.tolist() == [[True, True]] * 4 and out.decisions == "logits"


@pytest.mark.parametrize("combine", ["logits", "probs", "learned"])
def test_late_fusion_combines_the_two_unimodal_decisions(combine):
    model = late_model(combine)
    image, text, image_mask, text_mask = batch()
    with torch.no_grad():
        logits = model(image, text, image_mask, text_mask, check=True).logits
        ell_img, ell_txt = unimodal_decisions(model, image, text, image_mask, text_mask)
    if combine == "logits":
        expected = (ell_img + ell_txt) / 2
    elif combine == "probs":
        expected = torch.log((ell_img.softmax(-1) + ell_txt.softmax(-1)) / 2)
    else:
        w = torch.softmax(torch.tensor([0.7, -0.4]), 0)
        expected = w[0] * ell_img + w[1] * ell_txt
    torch.testing.assert_close(logits, expected)
    assert not torch.allclose(logits, ell_txt) and not torch.allclose(logits, ell_img)


@pytest.mark.parametrize("combine", ["logits", "probs", "learned"])
@pytest.mark.parametrize("head", ["mlp", "moe:experts=4,top_k=2"])
def test_late_fusion_without_the_image_the_text_decides(combine, head):
    model = late_model(combine, head)
    image, text, image_mask, text_mask = batch()
    no_image = torch.zeros_like(image_mask)
    with torch.no_grad():
        logits = model(image, text, no_image, text_mask, check=True).logits
        other_image = model(torch.randn_like(image), text, no_image, text_mask).logits
        _, ell_txt = unimodal_decisions(model, image, text, no_image, text_mask)
    expected = ell_txt.log_softmax(-1) if combine == "probs" else ell_txt
    torch.testing.assert_close(logits, expected)
    torch.testing.assert_close(logits.softmax(-1), ell_txt.softmax(-1))  # the text-only prediction
    torch.testing.assert_close(other_image, logits)  # the image has no say at all


def test_late_fusion_per_sample_missing_modalities():
    model = late_model("probs")
    image, text, image_mask, text_mask = batch()
    image_mask[0], text_mask[1] = False, False  # sample 0: text only; sample 1: image only
    image_mask[3], text_mask[3] = False, False  # sample 3: neither (both tokens decide)
    with torch.no_grad():
        logits = model(image, text, image_mask, text_mask, check=True).logits
        ell_img, ell_txt = unimodal_decisions(model, image, text, image_mask, text_mask)
    torch.testing.assert_close(logits[0], ell_txt[0].log_softmax(-1))
    torch.testing.assert_close(logits[1], ell_img[1].log_softmax(-1))
    torch.testing.assert_close(logits[3], torch.log((ell_img[3].softmax(-1) + ell_txt[3].softmax(-1)) / 2))


def test_late_fusion_learned_weights_train_through_the_model():
    model = late_model("learned").train()
    image, text, image_mask, text_mask = batch()
    loss = nn.functional.cross_entropy(model(image, text, image_mask, text_mask).logits, torch.arange(4))
    loss.backward()
    grad = model.fusion.modality_logits.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("combine", ["probs", "learned"])
def test_late_fusion_other_combines_meet_the_contract(combine):
    check_fusion(f"late_fusion:combine={combine}")


def test_late_fusion_rejects_an_unknown_combine():
    with pytest.raises(ValueError, match="combine must be one of logits, probs, learned"):
        registry.create_fusion("late_fusion:combine=vote", D)


class BadDecisions(Fusion):
    kind = "token"

    def __init__(self, dim: int, decisions: str = "vote", weight: float = 1.0) -> None:
        super().__init__(dim)
        self.proj = nn.Linear(dim, dim)
        self.decisions, self.weight = decisions, weight

    def forward(self, image, text, image_mask=None, text_mask=None):
        tokens = self.proj(torch.stack([image.mean(1), text.mean(1)], 1))
        weights = torch.full(tokens.shape[:2], self.weight)
        return FusionOutput(tokens, decisions=self.decisions, decision_weights=weights)


@pytest.mark.parametrize(
    ("hp", "rule"),
    [
        ({"decisions": "vote"}, "decisions is None, 'logits' or 'probs'"),
        ({"decisions": "logits", "weight": 0.0}, "decision_weights are positive and finite"),
    ],
)
def test_the_contract_checks_decisions(hp, rule):
    with pytest.raises(ContractError) as info:
        check_fusion(BadDecisions, **hp)
    assert info.value.rule == rule


# ------------------------------------------------------------------------------------------------- tfn
def test_tfn_tensor_holds_the_bilinear_and_both_unimodal_terms():
    fusion = build("tfn:inner=3")
    image, text, image_mask, text_mask = batch()
    v, t = masked_mean(image, image_mask), masked_mean(text, text_mask)
    present = torch.ones(4, dtype=torch.bool)
    z = fusion.tensor(v, t, present, present)
    h_v, h_t = fusion.image_proj(v), fusion.text_proj(t)
    assert z.shape == (4, 4, 4)
    torch.testing.assert_close(z[:, :3, :3], torch.einsum("bi,bj->bij", h_v, h_t))
    torch.testing.assert_close(z[:, :3, 3], h_v)
    torch.testing.assert_close(z[:, 3, :3], h_t)
    torch.testing.assert_close(z[:, 3, 3], torch.ones(4))


def test_tfn_output_is_a_linear_map_of_the_outer_product():
    fusion = build("tfn:inner=3")
    image, text, image_mask, text_mask = batch()
    h_v = fusion.image_proj(masked_mean(image, image_mask))
    h_t = fusion.text_proj(masked_mean(text, text_mask))
    ones = torch.ones(4, 1)
    a, b = torch.cat([h_v, ones], -1), torch.cat([h_t, ones], -1)
    weight = fusion.out.weight.view(D, 4, 4)
    expected = torch.einsum("dij,bi,bj->bd", weight, a, b) + fusion.out.bias
    out = fusion(image, text, image_mask, text_mask).tokens
    assert out.shape == (4, 1, D)
    torch.testing.assert_close(out[:, 0], expected)
    # the same, term by term: bilinear + image-only + text-only + constant
    terms = (
        torch.einsum("dij,bi,bj->bd", weight[:, :3, :3], h_v, h_t)
        + h_v @ weight[:, :3, 3].T
        + h_t @ weight[:, 3, :3].T
        + weight[:, 3, 3]
        + fusion.out.bias
    )
    torch.testing.assert_close(out[:, 0], terms)


def test_tfn_without_text_keeps_the_image_term_only():
    fusion = build("tfn:inner=3")
    image, text, image_mask, _ = batch()
    no_text = torch.zeros(4, text.shape[1], dtype=torch.bool)
    out = fusion(image, text, image_mask, no_text).tokens[:, 0]
    h_v = fusion.image_proj(masked_mean(image, image_mask))
    weight = fusion.out.weight.view(D, 4, 4)
    torch.testing.assert_close(out, h_v @ weight[:, :3, 3].T + weight[:, 3, 3] + fusion.out.bias)
    torch.testing.assert_close(fusion(image, -text, image_mask, no_text).tokens[:, 0], out)


def test_tfn_has_no_rank_option_lmf_is_the_factorised_form():
    assert "rank" not in registry.hyperparameters(registry.get_fusion_class("tfn"))
    assert registry.create_fusion("tfn:inner=16", 256).out.in_features == 17**2


# ------------------------------------------------------------------------------------------- mult, mbt
@pytest.mark.parametrize("name", ["mult", "mbt"])
def test_two_stream_fusions_ignore_padded_tokens_and_return_both_streams(name):
    fusion = build(name, heads=2)
    image, text, image_mask, text_mask = batch()
    with torch.no_grad():
        out = fusion(image, text, image_mask, text_mask)
        again = fusion(*repad(image, text, image_mask, text_mask), image_mask, text_mask)
        unmasked = fusion(image, text)
    torch.testing.assert_close(again.tokens, out.tokens)
    assert torch.equal(out.mask, torch.cat([image_mask, text_mask], 1))
    assert (out.tokens[~out.mask] == 0).all() and (out.tokens[out.mask].abs().sum(-1) > 0).all()
    assert not torch.allclose(unmasked.tokens, out.tokens)  # the mask does change the result


def attention_by_hand(mha: nn.MultiheadAttention, queries, keys, key_mask):
    """softmax(Q Kᵀ/√d) V per head, concatenated, output projection (dropout 0)."""
    wq, wk, wv = mha.in_proj_weight.chunk(3)
    bq, bk, bv = mha.in_proj_bias.chunk(3)
    heads, width = mha.num_heads, mha.embed_dim // mha.num_heads

    def split(x):
        return x.view(x.shape[0], x.shape[1], heads, width).transpose(1, 2)

    q, k, v = split(queries @ wq.T + bq), split(keys @ wk.T + bk), split(keys @ wv.T + bv)
    scores = q @ k.transpose(-1, -2) / math.sqrt(width)
    scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    mixed = (scores.softmax(-1) @ v).transpose(1, 2).reshape(queries.shape)
    return mixed @ mha.out_proj.weight.T + mha.out_proj.bias


def test_mult_crossmodal_block_is_softmax_attention_from_the_target_to_the_source():
    fusion = build("mult", heads=2, cross_layers=1)
    with torch.no_grad():  # known, non-trivial weights (LayerNorms away from identity)
        for p in fusion.parameters():
            p.normal_(0, 0.3)
    image, text, image_mask, _ = batch()
    block = fusion.text_reads_image.blocks[0]
    source = fusion.text_reads_image.source_norms[0](image)
    hidden = text + attention_by_hand(block.attn, block.norm_attn(text), source, image_mask)
    expected = hidden + block.ffn(block.norm_ffn(hidden))
    with torch.no_grad():
        torch.testing.assert_close(fusion.text_reads_image(text, image, image_mask), expected)


def test_mult_streams_read_each_other_and_a_missing_source_gives_no_update():
    fusion = build("mult", heads=2)
    image, text, image_mask, text_mask = batch()
    ni = image.shape[1]
    with torch.no_grad():
        out = fusion(image, text, image_mask, text_mask).tokens
        new_image = fusion(image.flip(0), text, image_mask, text_mask).tokens  # another image per sample
        new_text = fusion(image, text.flip(0), image_mask, text_mask).tokens
    assert not torch.allclose(new_image[:, ni:], out[:, ni:])  # image → text
    assert not torch.allclose(new_text[:, :ni], out[:, :ni])  # text → image
    no_text = text_mask.clone()
    no_text[0] = False
    with torch.no_grad():
        first = fusion(image, text, image_mask, no_text).tokens[0]
        second = fusion(image, torch.randn_like(text), image_mask, no_text).tokens[0]
    torch.testing.assert_close(first, second)


# ------------------------------------------------------------------------------------------------- mbt
def test_mbt_before_the_fusion_layer_the_streams_are_independent():
    fusion = build("mbt", heads=2, layers=3, fusion_layer=1)
    image, text, image_mask, text_mask = batch()
    other_text = torch.randn_like(text)
    with torch.no_grad():
        (img_a, _), shared = fusion.encode(image, text, image_mask, text_mask, depth=1)
        (img_b, _), _ = fusion.encode(image, other_text, image_mask, text_mask, depth=1)
        full_a = fusion(image, text, image_mask, text_mask).tokens[:, : image.shape[1]]
        full_b = fusion(image, other_text, image_mask, text_mask).tokens[:, : image.shape[1]]
    assert shared is None
    torch.testing.assert_close(img_a, img_b)
    assert not torch.allclose(full_a[image_mask], full_b[image_mask])  # after fusion the text flows in


def test_mbt_fusion_layer_exchanges_information_only_through_the_bottleneck():
    fusion = build("mbt", heads=2, layers=3, fusion_layer=1, bottlenecks=3)
    image, text, image_mask, text_mask = batch()
    g = torch.Generator().manual_seed(5)
    shared = torch.randn(4, 3, D, generator=g)
    masks = (image_mask, text_mask)
    with torch.no_grad():
        (img_a, txt_a), fused_a = fusion.step(1, (image, text), masks, shared)
        (img_b, _), fused_b = fusion.step(1, (image, -text), masks, shared)
        other_shared = torch.randn(4, 3, D, generator=g)
        (img_c, _), _ = fusion.step(1, (image, text), masks, other_shared)
        # the layer each modality runs on [its tokens ‖ bottleneck]; the bottleneck is their mean
        keys = lambda m: ~torch.cat([m, torch.ones(4, 3, dtype=torch.bool)], 1)  # noqa: E731
        img_full = fusion.image_layers[1](
            torch.cat([image, shared], 1), src_key_padding_mask=keys(image_mask)
        )
        txt_full = fusion.text_layers[1](torch.cat([text, shared], 1), src_key_padding_mask=keys(text_mask))
    torch.testing.assert_close(img_a, img_b)  # the text reaches the image only through the bottleneck
    assert not torch.allclose(fused_a, fused_b)  # ... which it does change
    assert not torch.allclose(img_a[image_mask], img_c[image_mask])  # ... and which the image reads
    torch.testing.assert_close(img_a, img_full[:, :5])
    torch.testing.assert_close(txt_a, txt_full[:, :6])
    torch.testing.assert_close(fused_a, (img_full[:, 5:] + txt_full[:, 6:]) / 2)


def test_mbt_a_missing_modality_writes_nothing_into_the_bottleneck():
    fusion = build("mbt", heads=2, layers=2, fusion_layer=0, bottlenecks=2)
    image, text, image_mask, text_mask = batch()
    text_mask[0] = False
    with torch.no_grad():
        (_, _), shared = fusion.encode(image, text, image_mask, text_mask)
        (_, _), shared_other = fusion.encode(image, torch.randn_like(text), image_mask, text_mask)
        out = fusion(image, text, image_mask, text_mask)
    torch.testing.assert_close(shared[0], shared_other[0])
    assert not out.mask[0, image.shape[1] :].any() and (out.tokens[0, image.shape[1] :] == 0).all()


@pytest.mark.parametrize("fusion_layer", [-1, 2, 3])
def test_mbt_rejects_a_fusion_layer_whose_bottleneck_is_never_read(fusion_layer):
    with pytest.raises(ValueError, match="fusion_layer must be in 0..layers-2=1"):
        registry.create_fusion(f"mbt:layers=3,fusion_layer={fusion_layer}", D)


# ------------------------------------------------------------------------------------------- listing
def test_the_new_fusions_are_registered_with_their_kind():
    kinds = {name: registry.get_fusion_class(name).kind for name in ("late_fusion", "tfn", "mult", "mbt")}
    assert kinds == {"late_fusion": "token", "tfn": "vector", "mult": "token", "mbt": "token"}
