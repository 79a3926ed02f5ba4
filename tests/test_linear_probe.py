"""The linear-probe floor: its predictions are scikit-learn's own (two-class and multi-class data), the
fitted probe is saved without pickle and, loaded back, scores batches exactly as at fit time."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from fusionzoo.baselines.linear_probe import C_GRID, MAX_ITER, pooled_views, probe_run
from fusionzoo.baselines.probe_model import ProbeModel, is_probe_checkpoint, load_probe
from fusionzoo.testing.token_features import synthetic_features
from fusionzoo.train.config import RunConfig
from fusionzoo.train.evaluation import predict


def _sklearn_reference(data, features: str, c: float) -> tuple[StandardScaler, LogisticRegression]:
    scaler = StandardScaler().fit(pooled_views(data, "train")[features])
    model = LogisticRegression(C=c, max_iter=MAX_ITER)
    return scaler, model.fit(scaler.transform(pooled_views(data, "train")[features]), data.labels("train"))


@pytest.mark.parametrize("num_classes", [2, 5])
@pytest.mark.parametrize("features", ["both", "text"])
def test_probe_predictions_are_the_sklearn_models_own(num_classes, features, tmp_path):
    data = synthetic_features(160, 60, 80, seed=3, num_classes=num_classes, noise=2.0)
    config = RunConfig(fusion=f"linear_probe:features={features}", head="logreg", metric="accuracy")
    result = probe_run(config, data, checkpoint_dir=tmp_path / "ckpt")
    scaler, model = _sklearn_reference(data, features, C_GRID[result.best_epoch - 1])
    expected = model.predict(scaler.transform(pooled_views(data, "test")[features]))
    assert np.array_equal(result.test_predictions, expected)
    sklearn_accuracy = float((expected == data.labels("test")).mean())
    assert result.metrics["accuracy"] == pytest.approx(sklearn_accuracy)
    if num_classes == 2:  # a real floor, not "always class 0"
        assert sklearn_accuracy > 0.8 and len(set(result.test_predictions)) == 2


def test_the_probe_model_is_predict_proba_and_reloads_from_safetensors(tmp_path):
    data = synthetic_features(120, 40, 50, seed=1, num_classes=2)
    scaler, model = _sklearn_reference(data, "both", 1.0)
    probe = ProbeModel.from_sklearn("both", 2, scaler, model)
    x = pooled_views(data, "test")["both"]
    scores = probe.scores(torch.from_numpy(x.astype(np.float64))).numpy()
    expected = model.predict_proba(scaler.transform(x.astype(np.float64)))
    np.testing.assert_allclose(scores, expected, rtol=1e-9, atol=1e-12)

    config = RunConfig(fusion="linear_probe:features=both", head="logreg")
    result = probe_run(config, data, checkpoint_dir=tmp_path / "ckpt")
    assert is_probe_checkpoint(tmp_path / "ckpt") and result.checkpoint == str(tmp_path / "ckpt")
    assert not list((tmp_path / "ckpt").glob("*.pkl")) and (tmp_path / "ckpt" / "model.safetensors").exists()
    again = predict(load_probe(tmp_path / "ckpt"), data, "test", batch_size=7)  # other batches, same rows
    assert np.array_equal(again.argmax(1), result.test_predictions)


def test_classes_missing_from_training_get_probability_zero():
    data = synthetic_features(90, 30, 30, seed=0, num_classes=4)
    keep = data.labels("train") != 3
    scaler = StandardScaler().fit(pooled_views(data, "train")["image"][keep])
    x = scaler.transform(pooled_views(data, "train")["image"][keep])
    model = LogisticRegression(max_iter=MAX_ITER).fit(x, data.labels("train")[keep])
    probe = ProbeModel.from_sklearn("image", 4, scaler, model)
    scores = probe.scores(torch.from_numpy(pooled_views(data, "test")["image"].astype(np.float64)))
    assert torch.all(scores[:, 3] == 0) and torch.allclose(
        scores.sum(1), torch.ones(len(scores), dtype=torch.float64)
    )
