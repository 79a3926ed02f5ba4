"""The ``auroc`` metric: hand-computed binary and one-vs-rest cases, the single-class NaN, the contract."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusionzoo.metrics.auroc import AurocWarning
from fusionzoo.metrics.base import EvalContext, evaluate_predictions
from fusionzoo.registry import create
from fusionzoo.testing import check_metric


def auroc(labels, scores, num_classes=None):
    scores = np.asarray(scores, dtype=float)
    return create("metric", "auroc").compute(EvalContext(labels, scores, num_classes or scores.shape[1]))


def test_binary_auroc_counts_the_ordered_pairs():
    # p(class 1) from logits (0, z): 0.5, 0.73, 0.27, 0.88 for z = 0, 1, -1, 2
    labels = [0, 1, 0, 1]
    scores = [[0, 0], [0, 1], [0, -1], [0, 2]]
    assert auroc(labels, scores)["auroc"] == 1.0  # both positives above both negatives
    labels = [1, 0, 0, 1]  # positives at 0.5 and 0.88, negatives at 0.73 and 0.27: 3 of 4 pairs ordered
    assert auroc(labels, scores)["auroc"] == pytest.approx(0.75)
    tied = auroc([0, 1], [[0, 0], [0, 0]])  # one pair, tied: counts one half
    assert tied["auroc"] == pytest.approx(0.5)


def test_binary_auroc_uses_the_positive_class_probability_not_the_argmax():
    # every prediction is class 0 (accuracy 0.5), yet the ranking of p(class 1) is perfect
    labels = [0, 0, 1, 1]
    scores = [[5, 0], [4, 0], [3, 0], [2, 0]]  # p1 increases down the rows
    values = evaluate_predictions(np.array(labels), np.array(scores, dtype=float))
    assert values["accuracy"] == 0.5 and values["auroc"] == 1.0


def test_multiclass_auroc_is_the_macro_mean_of_one_vs_rest_over_the_present_classes():
    labels = [0, 1, 2, 0]
    scores = np.log(
        np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.3, 0.3, 0.4], [0.1, 0.2, 0.7]])
    )  # softmax(log p) = p
    # class 0: positives 0.6, 0.1 vs negatives 0.2, 0.3 → 2 of 4 pairs ordered; class 1: 0.5 above
    # 0.3, 0.3, 0.2 → 3/3; class 2: 0.4 vs 0.1, 0.3, 0.7 → 2/3
    expected = (2 / 4 + 3 / 3 + 2 / 3) / 3
    assert auroc(labels, scores)["auroc"] == pytest.approx(expected)
    # a class absent from the labels (class 3) has no positives and is left out of the mean
    four = np.hstack([scores, np.full((4, 1), -9.0)])
    assert auroc(labels, four, 4)["auroc"] == pytest.approx(expected)


def test_a_split_with_one_class_is_nan_with_a_warning():
    with pytest.warns(AurocWarning, match="one class only"):
        value = auroc([1, 1, 1], [[0, 1], [1, 0], [0, 0]])["auroc"]
    assert math.isnan(value)


def test_auroc_meets_the_metric_contract():
    check_metric("auroc")
