"""Evaluation: every row is evaluated, NaN logits name the plugin and the phase, aux losses as metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fusionzoo.interface import Fusion, FusionOutput, Head, HeadOutput
from fusionzoo.registry import REGISTRIES, register_fusion, register_head
from fusionzoo.testing.token_features import synthetic_features
from fusionzoo.train.config import RunConfig
from fusionzoo.train.trainer import NonFiniteOutputError, load_checkpoint, predict, train_run

TINY = {"dim": 16, "epochs": 2, "batch_size": 32, "lr": 3e-3, "device": "cpu"}


@pytest.fixture(scope="module")
def data():
    return synthetic_features(128, 48, 48, seed=0)


@pytest.fixture
def temp_fusions():
    """Register test-only fusions and remove them afterwards."""
    added: list[str] = []

    def add(cls):
        register_fusion(cls)
        added.append(cls.name)
        return cls

    yield add
    for name in added:
        REGISTRIES["fusion"].unregister(name)


# ------------------------------------------------------------------------------------- evaluation
def test_evaluation_covers_every_row_when_the_last_batch_has_one():
    data = synthetic_features(64, 9, 9, seed=2)  # eval_batch_size 8 -> batches of 8 and 1
    config = RunConfig(fusion="concat_mlp", **{**TINY, "eval_batch_size": 8})
    from fusionzoo.train.model import FusionModel

    model = FusionModel.for_data(config, data)
    assert predict(model, data, "val", batch_size=8).shape == (9, data.num_classes)
    result = train_run(config, data)
    assert result.status == "ok"
    assert result.test_predictions.shape == (9,)
    labels = data.labels("test")
    assert result.metrics["accuracy"] == pytest.approx(float(np.mean(result.test_predictions == labels)))


class NaNInEvalFusion(Fusion):
    """Finite in training, NaN in eval mode: evaluation must name the plugin and the phase."""

    name = "test_nan_in_eval"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, image, text, image_mask=None, text_mask=None):
        tokens = self.proj(image[:, :1])
        return FusionOutput(tokens=tokens if self.training else tokens * float("nan"))


def test_nan_during_evaluation_names_the_plugin_and_the_phase(data, temp_fusions):
    temp_fusions(NaNInEvalFusion)
    with pytest.raises(NonFiniteOutputError) as info:
        train_run(RunConfig(fusion="test_nan_in_eval", head="linear", **TINY), data)
    message = str(info.value)
    assert "fusion 'test_nan_in_eval' produced NaN" in message
    assert "during evaluation (val split, epoch 1)" in message
    assert "Input contains NaN" not in message


class NaNInEvalHead(Head):
    name = "test_nan_head_in_eval"

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__(dim, num_classes)
        self.proj = nn.Linear(dim, num_classes)

    def forward(self, tokens, mask=None):
        logits = self.proj(tokens.mean(1))
        return HeadOutput(logits=logits if self.training else logits / 0.0 * 0.0)


def test_nan_from_the_head_during_evaluation_names_the_head(data):
    register_head(NaNInEvalHead)
    try:
        with pytest.raises(NonFiniteOutputError, match=r"head 'test_nan_head_in_eval' produced NaN logits"):
            train_run(RunConfig(fusion="concat_mlp", head="test_nan_head_in_eval", **TINY), data)
    finally:
        REGISTRIES["head"].unregister("test_nan_head_in_eval")


# ----------------------------------------------------------------------------- aux losses as metrics
def test_energy_aware_declares_its_energy_weight_and_the_run_applies_it(data):
    from fusionzoo.fusions.energy_aware_adaptive import EnergyAwareAdaptiveFusion
    from fusionzoo.train import trainer

    assert EnergyAwareAdaptiveFusion.aux_loss_weights == {"energy": 0.003}
    seen = {}
    original = trainer.LossComposer.from_config

    def spy(config, class_weights=None, aux_defaults=None):
        composer = original(config, class_weights, aux_defaults)
        seen["energy"] = composer.weight_of("energy")
        return composer

    trainer.LossComposer.from_config = spy
    try:
        train_run(RunConfig(fusion="energy_aware_adaptive", **{**TINY, "epochs": 1}), data)
        assert seen["energy"] == 0.003
        train_run(RunConfig(fusion="energy_aware_adaptive", loss_weights={"energy": 0.5}, **TINY), data)
        assert seen["energy"] == 0.5  # explicit weights win
    finally:
        trainer.LossComposer.from_config = original


def test_evaluation_reports_the_mean_of_each_aux_loss_over_the_split(data, tmp_path):
    """aux_<name> metrics -> the results table's test_aux_<name> / val_aux_<name> columns."""
    # eval batches of 20 over 48 rows (20, 20, 8): a sample-weighted mean, not a mean of batch means
    config = RunConfig(fusion="energy_aware_adaptive", **{**TINY, "eval_batch_size": 20})
    result = train_run(config, data, checkpoint_dir=tmp_path / "ckpt")
    assert {"aux_energy"} <= set(result.metrics) and {"aux_energy"} <= set(result.val_metrics)
    assert "val_aux_energy" in result.history[0]
    model, _, _ = load_checkpoint(tmp_path / "ckpt")
    batch = data.batch("test", torch.arange(data.size("test")))
    with torch.no_grad():
        out = model(batch["image"], batch["text"], batch["image_mask"], batch["text_mask"])
    probs = out.extras["fusion.router_probs"]
    by_hand = float((probs * model.fusion.costs).sum(-1).mean())  # Σ_k p_k c_k averaged over all rows
    assert result.metrics["aux_energy"] == pytest.approx(by_hand, rel=1e-5)
    assert 0.5 <= by_hand <= 1.0
