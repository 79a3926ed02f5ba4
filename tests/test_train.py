"""Training: loss composition, metrics, determinism, divergence, checkpoints, the first-batch contract check."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from fusionzoo.interface import Fusion, FusionOutput
from fusionzoo.metrics.base import evaluate_predictions as classification_metrics
from fusionzoo.metrics.class_buckets import class_buckets
from fusionzoo.testing import ContractError
from fusionzoo.testing.token_features import synthetic_features
from fusionzoo.train.config import RunConfig, parse_loss_weights
from fusionzoo.train.losses import LossComposer, class_weights_from_labels
from fusionzoo.train.trainer import load_checkpoint, predict, train_run

TINY = {"dim": 16, "epochs": 2, "batch_size": 32, "lr": 3e-3, "device": "cpu"}


@pytest.fixture(scope="module")
def data():
    return synthetic_features(128, 48, 48, seed=0)


# ------------------------------------------------------------------------------------------ config
def test_config_round_trip_and_hash():
    config = RunConfig(fusion="film", seed=3, loss_weights={"contrastive": 0.5}, **TINY)
    again = RunConfig.from_dict(json.loads(config.to_json()))
    assert again == config
    assert again.config_hash() == config.config_hash()
    assert config.replace(seed=7).config_hash() == config.config_hash()  # seed is not part of the hash
    assert config.replace(device="cuda").config_hash() == config.config_hash()
    assert config.replace(lr=1e-4).config_hash() != config.config_hash()
    assert RunConfig(lr=1).config_hash() == RunConfig(lr=1.0).config_hash()
    with pytest.raises(ValueError, match="unknown RunConfig field"):
        RunConfig.from_dict({"fusion": "film", "lr_typo": 1})
    with pytest.raises(ValueError, match="no registered metric writes the column"):
        RunConfig(metric="auc")


def test_resolved_head_uses_fusion_default(temp_fusions):
    @temp_fusions
    class WithDefault(Fusion):
        name = "test_default_head"
        default_head = "linear"

        def forward(self, image, text, image_mask=None, text_mask=None):
            return FusionOutput(tokens=image[:, :1])

    assert RunConfig(fusion="test_default_head").resolved_head() == "linear"
    assert RunConfig(fusion="concat_mlp").resolved_head() == "mlp"
    assert RunConfig(fusion="test_default_head", head="mlp").resolved_head() == "mlp"


# ------------------------------------------------------------------------------------------ losses
def test_loss_composition_with_weights():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 2])
    aux = {"contrastive": torch.tensor(2.0), "load_balance": torch.tensor(4.0)}
    ce = torch.nn.functional.cross_entropy(logits, labels)

    config = RunConfig(loss_weights=parse_loss_weights("contrastive=0.5,load_balance=0.25"))
    total, parts = LossComposer.from_config(config)(logits, labels, aux)
    assert total.item() == pytest.approx(ce.item() + 0.5 * 2.0 + 0.25 * 4.0)
    assert parts["ce"].item() == pytest.approx(ce.item()) and parts["load_balance"].item() == 4.0

    default_total, _ = LossComposer.from_config(RunConfig())(logits, labels, aux)  # unnamed aux: λ = 1
    assert default_total.item() == pytest.approx(ce.item() + 6.0)

    paper_total, _ = LossComposer.from_config(RunConfig(paper_loss=True))(logits, labels, aux)
    assert paper_total.item() == pytest.approx((ce.item() + 2.0 + 4.0) / 3)

    off, _ = LossComposer.from_config(RunConfig(loss_weights={"contrastive": 0, "ce": 2}))(
        logits, labels, aux
    )
    assert off.item() == pytest.approx(2 * ce.item() + 4.0)


def test_paper_loss_weights_exactly_the_papers_three_terms():
    """paper_loss: 1/3 for CE, contrastive and load balance; router_z (and any other aux loss) keeps
    the default its plugin declares, else 1; explicit --loss-weights still win."""
    from fusionzoo.heads.moe import MoEHead
    from fusionzoo.train.config import PAPER_LOSS_WEIGHT

    defaults = {**MoEHead.aux_loss_weights}
    weight = LossComposer.from_config(RunConfig(paper_loss=True), aux_defaults=defaults).weight_of
    assert weight("ce") == weight("contrastive") == weight("load_balance") == PAPER_LOSS_WEIGHT
    assert weight("router_z") == MoEHead.aux_loss_weights["router_z"] == 0.001
    assert weight("energy") == 1.0  # no declared default, not a paper term
    explicit = RunConfig(paper_loss=True, loss_weights={"router_z": 0.5, "contrastive": 0.1})
    weight = LossComposer.from_config(explicit, aux_defaults=defaults).weight_of
    assert weight("router_z") == 0.5 and weight("contrastive") == 0.1 and weight("ce") == PAPER_LOSS_WEIGHT
    # without paper_loss the declared defaults apply to the MoE terms and CE stays 1
    weight = LossComposer.from_config(RunConfig(), aux_defaults=defaults).weight_of
    assert (weight("ce"), weight("load_balance"), weight("router_z")) == (1.0, 0.01, 0.001)
    assert RunConfig(paper_loss=True).loss_weight("router_z", 0.001) == 0.001


def test_paper_loss_in_a_fluid_moe_run_uses_the_heads_router_z_default(data):
    from fusionzoo.train import trainer

    seen = {}
    original = trainer.LossComposer.from_config

    def spy(config, class_weights=None, aux_defaults=None):
        composer = original(config, class_weights, aux_defaults)
        seen.update(
            {name: composer.weight_of(name) for name in ("ce", "contrastive", "load_balance", "router_z")}
        )
        return composer

    config = RunConfig(
        fusion="fluid:queries=2,layers=1,heads=2",
        head="moe:experts=2",
        paper_loss=True,
        **{**TINY, "epochs": 1},
    )
    trainer.LossComposer.from_config = spy
    try:
        assert train_run(config, data).status == "ok"
    finally:
        trainer.LossComposer.from_config = original
    assert seen == {"ce": 1 / 3, "contrastive": 1 / 3, "load_balance": 1 / 3, "router_z": 0.001}


def test_label_smoothing_and_class_weights():
    logits = torch.tensor([[3.0, 0.0], [0.0, 3.0], [3.0, 0.0]])
    labels = torch.tensor([0, 1, 1])
    plain, _ = LossComposer(lambda name: 1.0)(logits, labels, {})
    smooth, _ = LossComposer(lambda name: 1.0, label_smoothing=0.2)(logits, labels, {})
    assert smooth.item() != pytest.approx(plain.item())
    weights = class_weights_from_labels(np.array([0, 0, 0, 1]), 3)
    assert weights.tolist() == pytest.approx([4 / 6, 2.0, 0.0])  # N/(C_present·n_c); absent class → 0
    weighted, _ = LossComposer(lambda name: 1.0, class_weights=weights[:2])(logits, labels, {})
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=weights[:2])
    assert weighted.item() == pytest.approx(expected.item())


def test_parse_loss_weights_rejects_bad_items():
    assert parse_loss_weights("ce=1, contrastive=0.333") == {"ce": 1.0, "contrastive": 0.333}
    for bad in ("contrastive", "contrastive=abc", "=1", "x=-1"):
        with pytest.raises(ValueError):
            parse_loss_weights(bad)


# ----------------------------------------------------------------------------------------- metrics
def test_metrics_on_hand_made_predictions():
    labels = np.array([0, 0, 0, 1, 1, 2])
    preds = np.array([0, 0, 1, 1, 2, 2])
    scores = np.eye(3)[preds]
    meta = pd.DataFrame({"geo": ["cz", "cz", "sk", "sk", "sk", "cz"], "is_human": [1, 0, 1, 1, 0, 0]})
    buckets = class_buckets(np.array([0, 0, 0, 1, 1, 2]), 3)  # class 0 most frequent, then 1, then 2
    assert buckets.tolist() == [0, 1, 2]
    m = classification_metrics(labels, scores, num_classes=3, buckets=buckets, meta=meta)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # per class precision: 0: 2/2, 1: 1/2, 2: 1/2; recall: 0: 2/3, 1: 1/2, 2: 1/1
    assert m["macro_precision"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert m["macro_recall"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    f1 = [2 * p * r / (p + r) for p, r in ((1, 2 / 3), (0.5, 0.5), (0.5, 1))]
    assert m["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert m["acc_head"] == pytest.approx(2 / 3) and m["acc_medium"] == 0.5 and m["acc_tail"] == 1.0
    assert m["acc_geo_cz"] == pytest.approx(1.0) and m["acc_geo_sk"] == pytest.approx(1 / 3)
    assert m["acc_human"] == pytest.approx(2 / 3)  # rows 0, 2, 3: right, wrong, right


def test_macro_metrics_average_over_every_class_of_the_data():
    """macro-F1/precision/recall average over all C classes (labels=range(C)), not over the classes that
    occur in the labels or the predictions: a class never predicted (1), a class predicted but never
    present (3) and a class neither present nor predicted (4) all count, with F1 = 0."""
    labels = np.array([0, 0, 1, 2, 2])
    preds = np.array([0, 0, 0, 2, 3])
    m = classification_metrics(labels, np.eye(5)[preds], num_classes=5)
    # class 0: P 2/3, R 1, F1 0.8; class 2: P 1, R 1/2, F1 2/3; classes 1, 3, 4: 0
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 5)
    assert m["macro_precision"] == pytest.approx((2 / 3 + 1) / 5)
    assert m["macro_recall"] == pytest.approx((1 + 0.5) / 5)
    # the denominator is the data's, so a run predicting an absent class is not scored on another scale
    other = classification_metrics(labels, np.eye(5)[np.array([0, 0, 0, 2, 0])], num_classes=5)
    assert other["macro_recall"] == pytest.approx(m["macro_recall"])


def test_top5_and_buckets_rule():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 50)
    scores = rng.normal(size=(50, 10))
    scores[np.arange(50), labels] -= 100  # true class always ranks last
    assert classification_metrics(labels, scores)["top5"] == 0.0
    scores[np.arange(50), labels] += 100.5 + scores.max()  # now always first
    assert classification_metrics(labels, scores)["top5"] == 1.0
    counts = np.repeat(np.arange(7), [50, 40, 30, 20, 10, 5, 1])  # 7 classes: head 3, medium 3, tail 1
    assert class_buckets(counts, 7).tolist() == [0, 0, 0, 1, 1, 1, 2]
    assert math.isnan(
        classification_metrics(np.array([0]), np.array([[1.0, 0.0]]), buckets=np.array([0, 2]))["acc_tail"]
    )


# ---------------------------------------------------------------------------------------- training
def test_same_seed_gives_identical_metrics(data):
    first = train_run(RunConfig(fusion="concat_mlp", seed=5, dropout=0.1, **TINY), data)
    second = train_run(RunConfig(fusion="concat_mlp", seed=5, dropout=0.1, **TINY), data)
    other = train_run(RunConfig(fusion="concat_mlp", seed=6, dropout=0.1, **TINY), data)
    assert first.status == second.status == "ok"
    assert first.metrics == second.metrics
    assert [h["train_loss"] for h in first.history] == [h["train_loss"] for h in second.history]
    assert [h["train_loss"] for h in first.history] != [h["train_loss"] for h in other.history]


def test_training_learns_and_reports_history(data):
    result = train_run(RunConfig(fusion="concat_mlp", **{**TINY, "epochs": 4}), data)
    assert result.status == "ok"
    assert result.metrics["accuracy"] > 0.5  # 6 classes, chance 1/6
    assert len(result.history) == result.epochs_run == 4
    assert {"train_loss", "train_ce", "val_accuracy", "val_macro_f1", "lr"} <= set(result.history[0])
    assert result.params > 0 and result.train_time > 0
    assert result.test_predictions.shape == (48,)


def test_final_evaluation_summarises_extras_without_changing_metrics(data):
    """FLUID's gate and the MoE head's expert counts become diagnostics rows of the test split; the
    collection only reads extras, so the test logits (and metrics) are those of a plain evaluation."""
    from fusionzoo.train.diagnostics import BINS
    from fusionzoo.train.evaluation import evaluate
    from fusionzoo.train.trainer import Trainer

    config = RunConfig(fusion="fluid:queries=4,layers=1", head="moe:experts=4,top_k=2", **TINY)
    trainer = Trainer(config, data)
    result = trainer.fit()
    assert result.status == "ok"
    rows = pd.DataFrame(result.diagnostics)
    gate = rows[rows["name"] == "fusion.gate"]
    assert set(gate["kind"]) == {"histogram"} and len(gate) == BINS
    assert gate["value"].sum() == data.size("test") * 4  # one gate per query and test row
    assert gate["edge_low"].min() == 0.0 and gate["edge_high"].max() == 1.0
    experts = rows[rows["name"] == "head.expert_counts"]
    assert set(experts["kind"]) == {"counts"} and list(experts["bin"]) == [0, 1, 2, 3]
    # FLUID's 2-query bottleneck gives 2 tokens per row; the head routes each to its top-2 experts
    assert experts["value"].sum() == data.size("test") * 2 * 2
    probs = rows[rows["name"] == "head.routing_probs"]
    assert probs["value"].sum() == data.size("test") * 2 * 4  # every probability of every token
    plain = predict(trainer.model, data, "test", batch_size=config.eval_batch_size)
    assert np.array_equal(plain.argmax(1), result.test_predictions)
    again, _ = evaluate(
        trainer.model, data, "test", buckets=trainer.buckets, batch_size=config.eval_batch_size
    )
    calibrated = {k: result.metrics.pop(k) for k in ("ece_ts", "temperature")}  # train/calibration.py
    assert again == result.metrics and calibrated["temperature"] > 0 and 0 <= calibrated["ece_ts"] <= 1
    assert set(rows.loc[rows["kind"] == "reliability", "name"].str.split(":").str[0]) == {
        "reliability", "reliability_ts"
    }  # fmt: skip


class NaNFusion(Fusion):
    """Finite on the first batch, then produces NaN: the run must end as "diverged"."""

    name = "test_nan_after_first"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.proj = nn.Linear(dim, dim)
        self.calls = 0

    def forward(self, image, text, image_mask=None, text_mask=None):
        self.calls += 1
        tokens = self.proj(image[:, :1])
        return FusionOutput(tokens=tokens * float("nan") if self.calls > 1 else tokens)


def test_nan_loss_marks_run_diverged(data, temp_fusions):
    temp_fusions(NaNFusion)
    result = train_run(RunConfig(fusion="test_nan_after_first", **TINY), data)
    assert result.status == "diverged"
    assert "nan" in result.error and "epoch 1" in result.error
    assert result.metrics == {}


class BadShapeFusion(Fusion):
    name = "test_bad_shape"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, image, text, image_mask=None, text_mask=None):
        return FusionOutput(tokens=self.proj(image).mean(1))  # (B, D): missing the token axis


def test_first_batch_contract_violation_names_plugin_and_rule(data, temp_fusions):
    temp_fusions(BadShapeFusion)
    with pytest.raises(ContractError) as info:
        train_run(RunConfig(fusion="test_bad_shape", **TINY), data)
    assert info.value.plugin == "fusion test_bad_shape"
    assert info.value.rule == "tokens have shape (B, Nf, D)"
    assert "test_bad_shape" in str(info.value) and "(B, Nf, D)" in str(info.value)


def test_checkpoint_round_trip(data, tmp_path):
    config = RunConfig(fusion="film", head="linear", seed=1, **TINY)
    result = train_run(config, data, checkpoint_dir=tmp_path / "ckpt")
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["config.json", "model.safetensors"]
    info = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert info["run_config"]["fusion"] == "film" and info["best_epoch"] == result.best_epoch
    assert b"pickle" not in (tmp_path / "ckpt" / "model.safetensors").read_bytes()[:200]
    model, loaded_config, _ = load_checkpoint(tmp_path / "ckpt")
    assert loaded_config == config
    logits = predict(model, data, "test")
    assert np.array_equal(logits.argmax(1), result.test_predictions)


def test_early_stopping_and_on_epoch_may_raise(data):
    seen: list[int] = []

    def on_epoch(epoch, metrics):
        seen.append(epoch)
        assert "macro_f1" in metrics
        if epoch == 2:
            raise KeyError("pruned")

    with pytest.raises(KeyError, match="pruned"):
        train_run(RunConfig(fusion="concat_mlp", **{**TINY, "epochs": 5}), data, on_epoch=on_epoch)
    assert seen == [1, 2]

    # lr so small nothing changes: the val metric never improves after epoch 1 -> stops after 1 + patience
    still = train_run(RunConfig(fusion="concat_mlp", **{**TINY, "epochs": 8, "lr": 1e-12}, patience=2), data)
    assert still.stopped_early and still.epochs_run == 3 and still.best_epoch == 1


def test_progress_events(data):
    events = []
    train_run(RunConfig(fusion="concat_mlp", **TINY), data, progress=events.append)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds.count("epoch") == 2 and "step" in kinds
    assert all(math.isfinite(e["loss"]) for e in events if e["event"] == "epoch")
