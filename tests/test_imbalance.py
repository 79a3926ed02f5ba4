"""Imbalance-aware training protocols (issue 21 item 2): OGM-GE and G-Blend — their math on tiny
tensors, a synthetic case where one modality dominates, refusal of fusions without per-modality
branches before any work, and ``fusionzoo bench --train-protocols ogm_ge,gblend`` end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from fusionzoo import registry
from fusionzoo.encoders.features import FeatureSplit
from fusionzoo.protocols.gblend import blend_weights
from fusionzoo.protocols.ogm_ge import modality_scores, modulate_gradients, modulation_coefficients
from fusionzoo.testing.token_features import synthetic_features, synthetic_split
from fusionzoo.train.config import RunConfig
from fusionzoo.train.inputs import FeatureData
from fusionzoo.train.trainer import Trainer


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------- OGM-GE math
def test_modality_scores_sum_the_softmax_of_the_true_class():
    logits = {"image": torch.tensor([[2.0, 0.0], [0.0, 0.0]]), "text": torch.tensor([[0.0, 1.0], [0.0, 3.0]])}
    labels = torch.tensor([0, 1])
    scores = modality_scores(logits, labels)
    p = 1 / (1 + math.exp(-2.0))
    assert scores["image"] == pytest.approx(p + 0.5)
    assert scores["text"] == pytest.approx(1 / (1 + math.e) + 1 / (1 + math.exp(-3.0)))


def test_coefficients_damp_only_the_dominant_modality():
    k = modulation_coefficients({"image": 3.0, "text": 1.0}, alpha=0.5)
    assert k["image"] == pytest.approx(1 - math.tanh(0.5 * (3.0 - 1.0)))
    assert k["text"] == 1.0
    k = modulation_coefficients({"image": 1.0, "text": 4.0}, alpha=2.0)
    assert k["text"] == pytest.approx(1 - math.tanh(2.0 * 3.0)) and k["image"] == 1.0
    assert modulation_coefficients({"image": 2.0, "text": 2.0}, alpha=5.0) == {"image": 1.0, "text": 1.0}
    assert modulation_coefficients({"image": 3.0, "text": 1.0}, alpha=0.0)["image"] == 1.0


def test_gradient_modulation_scales_and_adds_noise_with_the_gradients_spread():
    param = torch.nn.Parameter(torch.zeros(200, 50))
    grad = torch.randn(200, 50) * 3.0
    param.grad = grad.clone()
    modulate_gradients([param], 0.25, noise=False, generator=None)
    assert torch.allclose(param.grad, 0.25 * grad)
    param.grad = grad.clone()
    modulate_gradients([param], 0.25, noise=True, generator=torch.Generator().manual_seed(0))
    noise = param.grad - 0.25 * grad
    assert abs(float(noise.mean())) < 0.05 and float(noise.std()) == pytest.approx(
        float(grad.std()), rel=0.05
    )


# ------------------------------------------------------------------------------------------- G-Blend math
def test_blend_weights_are_generalisation_over_overfitting_squared():
    before = {"fused": (1.0, 1.2), "image": (1.0, 1.1), "text": (1.0, 1.3)}
    after = {"fused": (0.5, 0.9), "image": (0.8, 0.9), "text": (0.2, 1.4)}
    weights = blend_weights(before, after, {})
    # ΔG: fused 0.3, image 0.2, text −0.1 (→ 0); ΔO: fused 0.4 − 0.2 = 0.2, image 0.1 − 0.1 = 0 (ε)
    raw = {"fused": 0.3 / 0.2**2, "image": 0.2 / 1e-6, "text": 0.0}
    total = sum(raw.values())
    for key, value in raw.items():
        assert weights[key] == pytest.approx(value / total)
    assert sum(weights.values()) == pytest.approx(1.0)
    worse = {k: (t, v + 1.0) for k, (t, v) in before.items()}
    previous = {"fused": 0.5, "image": 0.25, "text": 0.25}
    assert blend_weights(before, worse, previous) == previous  # no branch generalised better: keep


# --------------------------------------------------------------------------------- one modality dominates
def _dominant_image_data(n_train=192, seed=0) -> FeatureData:
    """The image tells the class almost surely; the text is noisy."""

    def split(n, s):
        image = synthetic_split(n, noise=0.3, seed=s)
        text = synthetic_split(n, noise=4.0, seed=s)
        return FeatureSplit(image.image_tokens, text.text_tokens, text.text_offsets, image.labels, image.meta)

    return FeatureData(split(n_train, seed), split(96, seed + 1), split(96, seed + 2), num_classes=6)


def _config(train_protocol: str, **changes) -> RunConfig:
    base = dict(fusion="concat_mlp", dim=16, epochs=3, batch_size=32, lr=3e-3, patience=0, device="cpu")
    return RunConfig(**{**base, **changes}, train_protocol=train_protocol)


def test_ogm_ge_damps_the_gradient_of_the_dominant_modality():
    data = _dominant_image_data()
    trainer = Trainer(_config("ogm_ge:noise=false@1"), data)
    trainer.fit()
    result_k = trainer.hooks[0].coefficients  # of the last training batch
    assert result_k["text"] == 1.0 and result_k["image"] < 0.5, result_k
    # one step by hand: the image branch's gradient after the hook is k_image × the raw gradient
    batch = data.batch("train", torch.arange(32))
    out = trainer.model.forward_batch(batch)
    loss, parts = trainer.loss_fn(out.logits, batch["label"], out.aux_losses)
    loss, parts = trainer.hooks[0].loss(batch, out, loss, parts)
    trainer.optimizer.zero_grad()
    loss.backward()
    raw = {name: p.grad.clone() for name, p in trainer.model.named_parameters() if p.grad is not None}
    trainer.hooks[0].after_backward()
    k = trainer.hooks[0].coefficients
    assert k["image"] < 0.5 and k["text"] == 1.0 and float(parts["ogm_k_image"]) == pytest.approx(k["image"])
    for name, param in trainer.model.named_parameters():
        if name not in raw:
            continue
        expected = k["image"] if name.startswith("image_proj") else 1.0
        assert torch.allclose(param.grad, expected * raw[name]), name


def test_ogm_ge_history_shows_the_damping_and_the_plain_run_is_unchanged():
    data = _dominant_image_data()
    result = Trainer(_config("ogm_ge:noise=false@1"), data).fit()
    history = pd.DataFrame(result.history)
    assert (history["train_ogm_k_text"] == 1.0).all()
    assert history["train_ogm_k_image"].iloc[-1] < 0.6
    assert RunConfig(train_protocol="ogm_ge@0").train_protocol == ""  # α = 0: the plain run
    assert Trainer(_config("ogm_ge@0"), data).hooks == []


def _overfitting_text_data(seed=0) -> FeatureData:
    """The image generalises; the text is sample noise unrelated to the label (only memorisable)."""

    def split(n, s):
        image = synthetic_split(n, noise=1.0, seed=s)
        text = synthetic_split(n, noise=3.0, text_dim=48, seed=100 + s)  # labels of another draw
        return FeatureSplit(image.image_tokens, text.text_tokens, text.text_offsets, image.labels, image.meta)

    return FeatureData(split(96, seed), split(96, seed + 1), split(96, seed + 2), num_classes=6)


def test_gblend_weights_favour_the_modality_that_does_not_overfit():
    data = _overfitting_text_data()
    result = Trainer(_config("gblend@1", epochs=4, lr=1e-2), data).fit()
    history = pd.DataFrame(result.history)
    assert {"gblend_w_fused", "gblend_w_image", "gblend_w_text", "train_ce_image", "train_ce_text"} <= set(
        history.columns
    )
    last = history.iloc[-1]
    assert last["gblend_w_image"] > last["gblend_w_text"], last.to_dict()
    assert last[["gblend_w_fused", "gblend_w_image", "gblend_w_text"]].sum() == pytest.approx(1.0)


def test_gblend_heads_train_with_the_model_but_are_not_part_of_it():
    data = synthetic_features(64, 32, 32)
    trainer = Trainer(_config("gblend@0.5", epochs=1), data)
    heads = list(trainer.hooks[0].module.parameters())
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert all(id(p) in optimised for p in heads)
    before = [p.detach().clone() for p in heads]
    result = trainer.fit()
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, heads, strict=True))
    assert result.params == Trainer(_config(""), data).params  # the heads are training-only


@pytest.mark.parametrize("fusion", ["late_fusion", "film"])
def test_training_protocols_run_on_other_fusions_with_branches(fusion):
    data = synthetic_features(64, 32, 32)
    for protocol in ("ogm_ge@0.5", "gblend@1"):
        result = Trainer(_config(protocol, fusion=fusion, epochs=1), data).fit()
        assert result.status == "ok" and np.isfinite(result.metrics["accuracy"])


# ------------------------------------------------------------------------------------------------ refusal
@pytest.mark.parametrize(
    ("fusion", "why"), [("fluid", "mixes the modalities"), ("image_only", "reads only image")]
)
def test_fusions_without_branches_are_refused_naming_the_fusion(fusion, why):
    with pytest.raises(registry.RegistryError, match=f"fusion '{fusion}' has none: it {why}") as err:
        Trainer(_config("ogm_ge@0.5", fusion=fusion, dim=16), synthetic_features(32, 16, 16))
    assert "concat_mlp" in str(err.value)  # the fusions it does take


def test_training_protocols_leave_the_data_alone_and_are_flagged_as_changing_training():
    from fusionzoo.protocols._train_time import changes_training, with_train_protocol

    data = synthetic_features(32, 16, 16)
    assert with_train_protocol(RunConfig(train_protocol="gblend@1"), data) is data
    assert changes_training(RunConfig(train_protocol="ogm_ge@0.5"))
    assert changes_training(RunConfig(distill_teacher="abc:seeds=0"))
    assert not changes_training(RunConfig(train_protocol="missing_image@0.5"))
    assert not changes_training(RunConfig())


# ------------------------------------------------------------------------------------------------ the CLI
@pytest.fixture
def data_env(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONZOO_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("FUSIONZOO_CACHE", raising=False)
    return tmp_path


TINY = ["--dim", "16", "--batch-size", "64", "--device", "cpu", "--data-option", "size=240"]


def test_bench_refuses_a_fusion_without_branches_before_any_work(data_env):
    from fusionzoo.cli.bench import bench

    out = data_env / "runs"
    result = CliRunner().invoke(
        bench,
        ["--fusions", "fluid", "--train-protocols", "gblend", "--epochs", "1", "--out", str(out), *TINY],
    )
    assert result.exit_code == 2, result.output
    assert "--train-protocols" in result.output and "fusion 'fluid' has none" in result.output
    assert not (data_env / "data").exists() and not (out / "results.parquet").exists()


@pytest.mark.slow
def test_bench_trains_concat_mlp_with_ogm_ge_and_gblend_end_to_end(data_env):
    from fusionzoo.cli.bench import bench
    from fusionzoo.results.store import ResultsStore

    out = data_env / "runs"
    args = ["--fusions", "concat_mlp", "--train-protocols", "ogm_ge,gblend", "--epochs", "1", "--seeds", "0"]
    result = CliRunner().invoke(bench, [*args, "--out", str(out), *TINY], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "ogm_ge" in result.output and "gblend" in result.output  # the leaderboard names the protocols
    frame = ResultsStore(out).load()
    protocols = frame.set_index("fusion")["config"].map(lambda c: json.loads(c).get("train_protocol", ""))
    trained = sorted(protocols.loc["concat_mlp"])
    assert trained == ["gblend:every=1,seed=0,train_rows=4096@1", "ogm_ge:noise=true,seed=0@0.5"]
    # the automatic unimodal baselines (embedded data) train clean: they have no modality to balance
    assert set(protocols.loc[["image_only", "text_only"]]) == {""}
    assert set(frame["status"]) == {"ok"} and frame["run_id"].is_unique


def test_the_installed_command_refuses_a_fusion_without_branches(data_env):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("fusionzoo")
    args = ["--fusions", "mbt", "--train-protocols", "ogm_ge@0.5", "--out", str(data_env / "runs"), *TINY]
    done = subprocess.run([str(script), "bench", *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "fusion 'mbt' has none" in " ".join((done.stdout + done.stderr).split())
    assert not (data_env / "data").exists()
