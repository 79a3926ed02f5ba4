"""Calibration of a trained run: temperature scaling fitted on validation, and the reliability bins.

After training, the best epoch's model is evaluated on validation once more for its logits; the
temperature T > 0 minimising the validation NLL of softmax(logits / T)
(:func:`~fusionzoo.metrics.ece.fit_temperature`, Guo et al. 2017) rescales the test logits, which
leaves every prediction (so accuracy and F1) unchanged and gives a second ECE column:

    test_ece      ECE of softmax(test logits)          (the ``ece`` metric, every run)
    test_ece_ts   ECE of softmax(test logits / T)       (temperature-scaled, fitted on validation)
    test_temperature  T                                  (> 1: the model was over-confident)

Both columns are always computed (one validation pass and a one-parameter L-BFGS fit, negligible
next to training), so a reader can compare raw and scaled calibration for every fusion. The
reliability diagram's bins of both (:func:`~fusionzoo.metrics.ece.reliability_diagram`: count, mean
confidence, accuracy per bin of the top-label confidence) are stored as diagnostics rows of kind
``reliability`` (name ``reliability:<field>`` or ``reliability_ts:<field>``, ``bin``, the bin edges
and ``value``), so the report draws them from the runs directory alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusionzoo.metrics.ece import expected_calibration_error, fit_temperature, reliability_diagram

__all__ = ["KIND", "calibration", "reliability_rows"]

KIND = "reliability"
FIELDS = ("count", "confidence", "accuracy")


def reliability_rows(labels: np.ndarray, logits: np.ndarray, name: str) -> list[dict[str, Any]]:
    """The diagnostics rows of the reliability bins of ``logits`` (``name``: reliability or reliability_ts)."""
    bins = reliability_diagram(labels, logits)
    return [
        {"name": f"{name}:{field}", "kind": KIND, "bin": int(row["bin"]), "edge_low": float(row["lower"]),
         "edge_high": float(row["upper"]), "value": float(row[field])}
        for field in FIELDS
        for _, row in bins.iterrows()
    ]  # fmt: skip


def calibration(
    val_logits: np.ndarray, val_labels: np.ndarray, test_logits: np.ndarray, test_labels: np.ndarray
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """(``{"ece_ts": …, "temperature": …}``, reliability rows of the raw and scaled test logits);
    NaN metrics and no rows when a split is empty or the logits are not finite."""
    nan = {"ece_ts": float("nan"), "temperature": float("nan")}
    if not len(val_labels) or not len(test_labels):
        return nan, []
    if not (np.isfinite(val_logits).all() and np.isfinite(test_logits).all()):
        return nan, []
    temperature = fit_temperature(val_logits, val_labels)
    scaled = np.asarray(test_logits, dtype=np.float64) / temperature
    metrics = {"ece_ts": expected_calibration_error(test_labels, scaled), "temperature": temperature}
    rows = reliability_rows(test_labels, test_logits, KIND) + reliability_rows(
        test_labels, scaled, f"{KIND}_ts"
    )
    return metrics, rows
