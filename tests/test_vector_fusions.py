"""Math and behaviour of the built-in vector fusions (the contract itself is in test_contract.py)."""

from __future__ import annotations

import pytest
import torch

from fusionzoo import registry
from fusionzoo.layers.pooling import masked_mean

B, NI, NT, D = 6, 3, 4, 16


def make_inputs(batch: int = B, dim: int = D, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, NI, dim, generator=g), torch.randn(batch, NT, dim, generator=g)


def all_real(tokens: torch.Tensor) -> torch.Tensor:
    return torch.ones(tokens.shape[:2], dtype=torch.bool)


def fused(fusion, image, text, image_mask=None, text_mask=None) -> torch.Tensor:
    out = fusion(image, text, image_mask, text_mask)
    assert out.tokens.shape == (image.shape[0], 1, fusion.dim)
    return out.tokens[:, 0]


# ------------------------------------------------------------------------------------------------ gated
@pytest.mark.parametrize("project", [True, False])
def test_gated_is_the_convex_blend_recomputed_from_its_weights(project):
    fusion = registry.create_fusion(f"gated:project={str(project).lower()}", D).eval()
    image, text = make_inputs()
    v, t = image.mean(1), text.mean(1)
    gate = torch.sigmoid(torch.cat([v, t], -1) @ fusion.gate.weight.T + fusion.gate.bias)
    vp = v @ fusion.image_proj.weight.T + fusion.image_proj.bias if project else v
    tp = t @ fusion.text_proj.weight.T + fusion.text_proj.bias if project else t
    out = fusion(image, text)
    torch.testing.assert_close(out.tokens[:, 0], gate * vp + (1 - gate) * tp)
    torch.testing.assert_close(out.extras["gate"], gate)
    z = out.tokens[:, 0]
    eps = 1e-5
    assert (z >= torch.minimum(vp, tp) - eps).all() and (z <= torch.maximum(vp, tp) + eps).all()
    assert ((gate > 0) & (gate < 1)).all()


def test_gated_relies_on_the_present_modality():
    fusion = registry.create_fusion("gated", D).eval()
    image, text = make_inputs()
    image_mask, text_mask = all_real(image), all_real(text)
    image_mask[0] = False  # sample 0: text only
    text_mask[1] = False  # sample 1: image only
    z = fused(fusion, image, text, image_mask, text_mask)
    torch.testing.assert_close(z[0], fusion.text_proj(text[0].mean(0)))
    torch.testing.assert_close(z[1], fusion.image_proj(image[1].mean(0)))


# ------------------------------------------------------------------------------------------------- film
@pytest.mark.parametrize("condition_on", ["text", "image"])
def test_film_is_gamma_times_input_plus_beta(condition_on):
    fusion = registry.create_fusion(f"film:condition_on={condition_on}", D).eval()
    with torch.no_grad():  # move γ's bias away from its init so a swapped role cannot pass by chance
        fusion.gamma.bias.normal_()
    image, text = make_inputs()
    v, t = image.mean(1), text.mean(1)
    cond, x = (t, v) if condition_on == "text" else (v, t)
    gamma = cond @ fusion.gamma.weight.T + fusion.gamma.bias
    beta = cond @ fusion.beta.weight.T + fusion.beta.bias
    torch.testing.assert_close(fused(fusion, image, text), gamma * x + beta)


def test_film_is_asymmetric():
    image, text = make_inputs()
    torch.manual_seed(0)
    by_text = registry.create_fusion("film", D).eval()
    torch.manual_seed(0)
    by_image = registry.create_fusion("film:condition_on=image", D).eval()
    assert not torch.allclose(fused(by_text, image, text), fused(by_image, image, text))


def test_film_rejects_unknown_condition():
    with pytest.raises(registry.RegistryError, match="condition_on"):
        registry.create_fusion("film:condition_on=audio", D)


# ------------------------------------------------------------------------------------- modality dropout
def dropout_expected(fusion, image, text, image_mask, text_mask, extras) -> torch.Tensor:
    """Recompute the output from the dropped flags the module reports (so the flags must be true)."""
    v, t = masked_mean(image, image_mask), masked_mean(text, text_mask)
    keep_v = (image_mask.any(1) & (extras["dropped_image"] == 0)).float().unsqueeze(-1)
    keep_t = (text_mask.any(1) & (extras["dropped_text"] == 0)).float().unsqueeze(-1)
    return fusion.mlp(torch.cat([v * keep_v, t * keep_t, keep_v, keep_t], -1))


def test_modality_dropout_never_drops_both_modalities_of_a_sample():
    fusion = registry.create_fusion("modality_dropout:p=0.9,dropout=0.0", D).train()
    image, text = make_inputs(batch=32)
    image_mask, text_mask = all_real(image), all_real(text)
    image_mask[:4] = False  # these samples only have text: text must never be dropped
    text_mask[4:8] = False  # these only have image
    dropped_any = torch.zeros(32)
    for _ in range(50):
        out = fusion(image, text, image_mask, text_mask)
        di, dt = out.extras["dropped_image"], out.extras["dropped_text"]
        assert not ((di > 0) & (dt > 0)).any()
        assert (dt[:4] == 0).all() and (di[4:8] == 0).all()
        assert not (di[:4] > 0).any() and not (dt[4:8] > 0).any()  # never drop what is already absent
        torch.testing.assert_close(
            out.tokens[:, 0], dropout_expected(fusion, image, text, image_mask, text_mask, out.extras)
        )
        dropped_any += di + dt
    rate = dropped_any[8:].sum() / (50 * 24)
    assert 0.8 < rate < 0.97  # p = 0.9 per sample that has both modalities
    assert dropped_any[:8].sum() == 0


def test_modality_dropout_sample_mode_differs_within_a_batch():
    fusion = registry.create_fusion("modality_dropout:p=0.5", D).train()
    image, text = make_inputs(batch=32)
    out = fusion(image, text)
    dropped = out.extras["dropped_image"] - out.extras["dropped_text"]  # +1 image, -1 text, 0 none
    assert len(set(dropped.tolist())) > 1


def test_modality_dropout_batch_mode_drops_for_the_whole_batch():
    fusion = registry.create_fusion("modality_dropout:p=0.5,mode=batch,dropout=0.0", D).train()
    image, text = make_inputs(batch=16)
    seen = set()
    for _ in range(40):
        out = fusion(image, text)
        di, dt = out.extras["dropped_image"], out.extras["dropped_text"]
        assert (di == di[0]).all() and (dt == dt[0]).all()
        assert not (di[0] > 0 and dt[0] > 0)
        seen.add((di[0].item(), dt[0].item()))
        mask = all_real(image)
        torch.testing.assert_close(
            out.tokens[:, 0], dropout_expected(fusion, image, text, mask, all_real(text), out.extras)
        )
    assert seen == {(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)}


def test_modality_dropout_eval_is_the_inner_fusion():
    fusion = registry.create_fusion("modality_dropout:p=1.0", D).eval()
    image, text = make_inputs()
    v, t = image.mean(1), text.mean(1)
    ones = torch.ones(B, 1)
    expected = fusion.mlp(torch.cat([v, t, ones, ones], -1))
    out = fusion(image, text)
    torch.testing.assert_close(out.tokens[:, 0], expected)
    assert out.extras["dropped_image"].sum() == 0 and out.extras["dropped_text"].sum() == 0
    fusion.train()  # p = 1: every sample loses exactly one modality, so the training output differs
    train_out = fusion(image, text)
    assert ((train_out.extras["dropped_image"] + train_out.extras["dropped_text"]) == 1).all()
    assert not torch.allclose(train_out.tokens, out.tokens)


# ----------------------------------------------------------------------------------- transformer_concat
def test_transformer_concat_modality_embeddings_are_used():
    fusion = registry.create_fusion("transformer_concat:dropout=0.0", D).eval()
    image, text = make_inputs()
    before = fused(fusion, image, text)
    before.pow(2).sum().backward()
    grad = fusion.modality_embeddings.grad
    assert grad is not None and grad[0].abs().sum() > 0 and grad[1].abs().sum() > 0
    # a random direction: a constant shift of a token would be invisible behind the LayerNorms
    shift = torch.randn(D, generator=torch.Generator().manual_seed(3))
    for index in (0, 1):
        with torch.no_grad():
            fusion.modality_embeddings[index] += shift
        assert not torch.allclose(before, fused(fusion, image, text), atol=1e-3)
        with torch.no_grad():
            fusion.modality_embeddings[index] -= shift
    torch.testing.assert_close(fused(fusion, image, text), before)


def test_transformer_concat_ignores_a_missing_modality():
    fusion = registry.create_fusion("transformer_concat:dropout=0.0", D).eval()
    image, text = make_inputs()
    text_mask = all_real(text)
    text_mask[0] = False
    z = fused(fusion, image, text, None, text_mask)
    z_other = fused(fusion, image, text + 5.0, None, text_mask)
    torch.testing.assert_close(z[0], z_other[0])  # sample 0 has no text: text values do not matter
    assert not torch.allclose(z[1:], z_other[1:])


# -------------------------------------------------------------------------------- energy_aware_adaptive
def test_energy_aware_eval_is_deterministic_and_returns_energy():
    fusion = registry.create_fusion("energy_aware_adaptive", D)
    image, text = make_inputs()
    fusion.train()
    train_out = fusion(image, text)
    assert "energy" in train_out.aux_losses and train_out.aux_losses["energy"].requires_grad
    fusion.eval()
    first, second = fusion(image, text), fusion(image, text)
    assert torch.equal(first.tokens, second.tokens)
    assert torch.equal(first.extras["path"], second.extras["path"])
    assert "energy" in first.aux_losses and first.aux_losses["energy"].dim() == 0
    assert first.extras["router_probs"].shape == (B, 3)


def set_router(fusion, logits: list[float]) -> None:
    last = fusion.router.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor(logits))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_energy_equals_expected_cost_on_a_hand_set_router(mode):
    fusion = registry.create_fusion(
        "energy_aware_adaptive:cost_image=1.0,cost_text=0.25,cost_both=3.0,dropout=0.0", D
    )
    set_router(fusion, [0.5, -1.0, 2.0])
    fusion.train(mode == "train")
    image, text = make_inputs()
    out = fusion(image, text)
    p = torch.softmax(torch.tensor([0.5, -1.0, 2.0]), 0)
    expected = (p * torch.tensor([1.0, 0.25, 3.0])).sum()
    torch.testing.assert_close(out.aux_losses["energy"], expected)
    torch.testing.assert_close(out.extras["router_probs"], p.expand(B, 3))


def test_energy_aware_eval_takes_the_argmax_path():
    fusion = registry.create_fusion("energy_aware_adaptive:dropout=0.0", D).eval()
    image, text = make_inputs()
    v, t = image.mean(1), text.mean(1)
    for k, expected in enumerate(
        [fusion.image_path(v), fusion.text_path(t), fusion.both_path(torch.cat([v, t], -1))]
    ):
        logits = [-3.0, -3.0, -3.0]
        logits[k] = 3.0
        set_router(fusion, logits)
        out = fusion(image, text)
        assert (out.extras["path"] == k).all()
        torch.testing.assert_close(out.tokens[:, 0], expected)


def test_energy_aware_training_samples_one_hot_paths_with_router_gradient():
    fusion = registry.create_fusion("energy_aware_adaptive:dropout=0.0", D).train()
    set_router(fusion, [0.0, 0.0, 0.0])
    image, text = make_inputs(batch=64)
    out = fusion(image, text)
    v, t = image.mean(1), text.mean(1)
    candidates = torch.stack(
        [fusion.image_path(v), fusion.text_path(t), fusion.both_path(torch.cat([v, t], -1))], 1
    )
    chosen = candidates[torch.arange(64), out.extras["path"]]
    torch.testing.assert_close(out.tokens[:, 0], chosen)
    assert len(set(out.extras["path"].tolist())) == 3  # uniform router: all paths get sampled
    out.tokens.sum().backward()  # straight-through: the task loss reaches the router
    assert fusion.router.net[-1].weight.grad.abs().sum() > 0


def test_energy_aware_routes_around_a_missing_modality():
    fusion = registry.create_fusion("energy_aware_adaptive", D)
    set_router(fusion, [0.0, 0.0, 5.0])  # prefers "both"
    image, text = make_inputs()
    image_mask, text_mask = all_real(image), all_real(text)
    image_mask[0] = False
    text_mask[1] = False
    for mode in (True, False):
        fusion.train(mode)
        out = fusion(image, text, image_mask, text_mask)
        assert out.extras["path"][0] == 1 and out.extras["path"][1] == 0
        assert out.extras["router_probs"][0, 1] == 1 and out.extras["router_probs"][1, 0] == 1


# --------------------------------------------------------------------------------- image_only/text_only
@pytest.mark.parametrize(("name", "kept"), [("image_only", "image"), ("text_only", "text")])
def test_unimodal_baseline_ignores_the_other_modality(name, kept):
    fusion = registry.create_fusion(name, D).eval()
    image, text = make_inputs()
    other_image, other_text = make_inputs(seed=1)
    z = fused(fusion, image, text)
    if kept == "image":
        torch.testing.assert_close(fused(fusion, image, other_text), z)
        torch.testing.assert_close(fused(fusion, image, text, None, torch.zeros(B, NT, dtype=torch.bool)), z)
        assert not torch.allclose(fused(fusion, other_image, text), z)
        torch.testing.assert_close(z, fusion.proj(image.mean(1)))
    else:
        torch.testing.assert_close(fused(fusion, other_image, text), z)
        torch.testing.assert_close(fused(fusion, image, text, torch.zeros(B, NI, dtype=torch.bool)), z)
        assert not torch.allclose(fused(fusion, image, other_text), z)
        torch.testing.assert_close(z, fusion.proj(text.mean(1)))


@pytest.mark.parametrize(("name", "dropped"), [("image_only", "image"), ("text_only", "text")])
def test_unimodal_baseline_without_its_modality_projects_zeros(name, dropped):
    fusion = registry.create_fusion(f"{name}:hidden_mult=1.0", D).eval()
    image, text = make_inputs()
    masks = {"image_mask": None, "text_mask": None}
    masks[f"{dropped}_mask"] = torch.zeros(B, NI if dropped == "image" else NT, dtype=torch.bool)
    z = fused(fusion, image, text, masks["image_mask"], masks["text_mask"])
    torch.testing.assert_close(z, fusion.proj(torch.zeros(B, D)))
    assert torch.isfinite(z).all()


def test_unimodal_baselines_have_no_parameters_for_the_ignored_modality():
    image_only, text_only = registry.create_fusion("image_only", D), registry.create_fusion("text_only", D)
    assert sum(p.numel() for p in image_only.parameters()) == D * D + D
    assert sum(p.numel() for p in text_only.parameters()) == D * D + D


# ------------------------------------------------------------------------------------------ embracenet
def test_embracenet_eval_is_the_deterministic_expectation():
    fusion = registry.create_fusion("embracenet:image_prob=0.3", D).eval()
    image, text = make_inputs()
    first, second = fused(fusion, image, text), fused(fusion, image, text)
    assert torch.equal(first, second)
    dv, dt = fusion.image_dock(image.mean(1)), fusion.text_dock(text.mean(1))
    torch.testing.assert_close(first, 0.3 * dv + 0.7 * dt)


def test_embracenet_training_picks_each_feature_from_one_modality():
    fusion = registry.create_fusion("embracenet", 32).train()
    image, text = make_inputs(batch=8, dim=32)
    dv, dt = fusion.image_dock(image.mean(1)), fusion.text_dock(text.mean(1))
    z = fused(fusion, image, text)
    from_image, from_text = torch.isclose(z, dv), torch.isclose(z, dt)
    assert (from_image | from_text).all()
    share = (from_image & ~from_text).float().mean()
    assert 0.3 < share < 0.7  # image_prob = 0.5
    assert not torch.equal(z, fused(fusion, image, text))  # sampled anew each call


def test_embracenet_uses_only_the_present_modality():
    fusion = registry.create_fusion("embracenet", D)
    image, text = make_inputs()
    image_mask, text_mask = all_real(image), all_real(text)
    text_mask[0] = False  # sample 0: image only
    image_mask[1] = False  # sample 1: text only
    for mode in (True, False):
        fusion.train(mode)
        z = fused(fusion, image, text, image_mask, text_mask)
        torch.testing.assert_close(z[0], fusion.image_dock(image[0].mean(0)))
        torch.testing.assert_close(z[1], fusion.text_dock(text[1].mean(0)))
        z_other = fused(fusion, image * 3.0, text + 2.0, image_mask, text_mask)
        assert not torch.allclose(z_other[0], z[0]) and not torch.allclose(z_other[1], z[1])
    fusion.eval()
    z = fused(fusion, image, text, image_mask, text_mask)
    z_changed_text = fused(fusion, image, text - 4.0, image_mask, text_mask)
    torch.testing.assert_close(z[0], z_changed_text[0])


# ---------------------------------------------------------------------------------------- all of them
VECTOR_FUSIONS = [
    "gated",
    "film",
    "modality_dropout",
    "transformer_concat",
    "energy_aware_adaptive",
    "image_only",
    "text_only",
    "embracenet",
    "tfn",
]


@pytest.mark.parametrize("name", VECTOR_FUSIONS)
@pytest.mark.parametrize("pool", ["mean", "max", "cls"])
def test_registered_as_vector_fusion_with_pool_option(name, pool):
    fusion = registry.create_fusion(f"{name}:pool={pool}", D).eval()
    assert fusion.kind == "vector" and fusion.pool == pool
    assert registry.get_entry("fusion", name).source == "built-in"
    image, text = make_inputs()
    both_missing = torch.zeros(B, NI, dtype=torch.bool), torch.zeros(B, NT, dtype=torch.bool)
    assert torch.isfinite(fused(fusion, image, text, *both_missing)).all()


@pytest.mark.parametrize("name", VECTOR_FUSIONS)
def test_search_space_uses_trial_names_unique_to_the_fusion(name):
    optuna = pytest.importorskip("optuna")
    cls = registry.get_fusion_class(name)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    hp = cls.search_space(trial)
    assert hp and set(hp) <= set(registry.hyperparameters(cls))
    assert all(key.startswith(name.split("_adaptive")[0]) for key in trial.params), trial.params
    registry.create_fusion(name, D, **hp)
