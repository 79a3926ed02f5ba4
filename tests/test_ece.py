"""The ``ece`` metric (torchmetrics' top-label calibration error), its reliability-diagram bins and
temperature scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import binary_calibration_error, multiclass_calibration_error

from fusionzoo.metrics.base import column_direction, evaluate_predictions
from fusionzoo.metrics.ece import (
    expected_calibration_error,
    fit_temperature,
    probabilities,
    reliability_diagram,
)
from fusionzoo.testing import check_metric

# 4 samples, 3 classes, 15 bins of width 1/15 (no confidence on a bin edge):
#   row 0: conf 0.90, predicts 0 = label  -> bin 13 [0.867, 0.933)  correct
#   row 1: conf 0.92, predicts 1, label 2 -> bin 13                 wrong
#   row 2: conf 0.62, predicts 0 = label  -> bin 9  [0.600, 0.667)  correct
#   row 3: conf 0.45, predicts 2, label 1 -> bin 6  [0.400, 0.467)  wrong
# bin 13: acc 1/2, conf (0.90 + 0.92)/2 = 0.91, weight 2/4 -> 0.5 · 0.41 = 0.205
# bin 9:  acc 1,   conf 0.62,                  weight 1/4 -> 0.25 · 0.38 = 0.095
# bin 6:  acc 0,   conf 0.45,                  weight 1/4 -> 0.25 · 0.45 = 0.1125
# ECE = 0.205 + 0.095 + 0.1125 = 0.4125
PROBS = np.array([[0.90, 0.05, 0.05], [0.05, 0.92, 0.03], [0.62, 0.28, 0.10], [0.20, 0.35, 0.45]])
LABELS = np.array([0, 2, 0, 1])


def test_ece_on_a_hand_computed_case():
    assert expected_calibration_error(LABELS, PROBS) == pytest.approx(0.4125, abs=1e-6)
    assert expected_calibration_error(LABELS, np.log(PROBS)) == pytest.approx(0.4125, abs=1e-6)  # logits
    metrics = evaluate_predictions(LABELS, np.log(PROBS))  # every run gets test_ece / val_ece
    assert metrics["ece"] == pytest.approx(0.4125, abs=1e-6)
    assert column_direction("test_ece") == "min" and column_direction("val_ece") == "min"


def test_binary_ece_is_top_label_not_positive_class():
    # A: p(1) = 0.7, label 1 (correct, conf 0.7); B: p(1) = 0.3, label 1 (predicts 0: wrong, conf 0.7).
    # top-label: one bin, acc 1/2, conf 0.7 -> 0.2. Positive-class binning: |1 − 0.7|/2 + |1 − 0.3|/2 = 0.5
    probs, labels = np.array([[0.3, 0.7], [0.7, 0.3]]), np.array([1, 1])
    assert expected_calibration_error(labels, probs) == pytest.approx(0.2, abs=1e-6)
    assert float(multiclass_calibration_error(torch.tensor(probs), torch.tensor(labels), 2)) == pytest.approx(
        0.2
    )
    assert float(binary_calibration_error(torch.tensor(probs[:, 1]), torch.tensor(labels))) == pytest.approx(
        0.5
    )


def test_probabilities_keeps_distributions_and_softmaxes_logits():
    assert np.array_equal(probabilities(PROBS), PROBS)
    logits = np.array([[0.2, 0.3, 0.5]]) * 0.5  # in [0, 1] but not a distribution: logits
    np.testing.assert_allclose(probabilities(logits), torch.softmax(torch.tensor(logits), 1).numpy())


def test_reliability_diagram_bins_give_torchmetrics_ece():
    bins = reliability_diagram(LABELS, PROBS).set_index("bin")
    assert len(bins) == 16 and bins["count"].sum() == 4
    assert bins.loc[13, "count"] == 2 and bins.loc[13, "accuracy"] == 0.5
    assert bins.loc[13, "confidence"] == pytest.approx(0.91) and bins.loc[13, "gap"] == pytest.approx(-0.41)
    assert bins["confidence"].isna().sum() == 13  # empty bins
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 6)) * 4
    logits[:20, 0] += 60  # confidences of exactly 1 in float32: torchmetrics' extra bin
    labels = rng.integers(0, 6, 500)
    table = reliability_diagram(labels, logits)
    assert table.loc[15, "count"] == 20 and table.loc[15, "lower"] == table.loc[15, "upper"] == 1.0
    expected = float(multiclass_calibration_error(torch.tensor(logits), torch.tensor(labels), 6, n_bins=15))
    assert (table["weight"] * table["gap"].abs()).sum() == pytest.approx(expected, abs=1e-6)


def test_temperature_scaling_recovers_a_scale_of_three_and_reduces_ece():
    rng = np.random.default_rng(1)
    true_logits = rng.normal(size=(4000, 5)) * 1.5
    cumulative = probabilities(true_logits).cumsum(axis=1)
    labels = (rng.random((4000, 1)) > cumulative).sum(axis=1)  # labels drawn from softmax(true_logits)
    val, test = slice(0, 2000), slice(2000, 4000)
    overconfident = 3.0 * true_logits
    temperature = fit_temperature(overconfident[val], labels[val])
    assert temperature == pytest.approx(3.0, rel=0.1)  # logits / T: the scale 1/T ≈ 1/3 undoes the 3
    before = expected_calibration_error(labels[test], overconfident[test])
    after = expected_calibration_error(labels[test], overconfident[test] / temperature)
    assert after < before / 3
    assert (overconfident[test] / temperature).argmax(1).tolist() == overconfident[test].argmax(1).tolist()


def test_fit_temperature_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(N, C\) logits and \(N,\) labels"):
        fit_temperature(np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="not all finite"):
        fit_temperature(np.array([[np.inf, 0.0]]), np.array([0]))


def test_ece_meets_the_metric_contract():
    check_metric("ece")
