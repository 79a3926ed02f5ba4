"""Expected calibration error (top-label, 15 equal-width bins), the reliability diagram's bins and
temperature scaling (Guo et al., ICML 2017)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy.special import softmax

from fusionzoo.metrics.base import EvalContext, Metric, register_metric

N_BINS = 15
PROBABILITY_TOLERANCE = 1e-6  # a row within [0, 1] summing to 1 ± this is taken as probabilities


def probabilities(scores: np.ndarray) -> np.ndarray:
    """``(N, C)`` class probabilities of ``scores``: rows that already are distributions (entries in
    [0, 1], sum 1 ± 1e-6) are kept, any other input is taken as logits and softmaxed (float64).
    (torchmetrics alone would softmax only when some value lies outside [0, 1].)"""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores must be (N, C), got shape {s.shape}")
    is_distribution = (s.size == 0) or (
        (s >= 0).all()
        and (s <= 1).all()
        and np.allclose(s.sum(axis=1), 1.0, rtol=0, atol=PROBABILITY_TOLERANCE)
    )
    return s if is_distribution else softmax(s, axis=1)


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, n_bins: int = N_BINS) -> float:
    """ECE = Σ_b (n_b / N) · |acc_b − conf_b| over ``n_bins`` equal-width bins of the top-label
    confidence conf = max_c p_c (torchmetrics ``multiclass_calibration_error``, ``norm="l1"``).

    Two classes use the same top-label definition (conf = max(p, 1 − p) ∈ [0.5, 1]), so binary and
    multiclass datasets are comparable; torchmetrics' ``binary_calibration_error`` would instead bin
    p(class 1) against the label frequency, a different quantity.
    """
    # imported here: torchmetrics imports torchvision and torch._dynamo (measured +5-9 s per process on a
    # loaded 2-core machine), which every command that loads the metric registry would pay
    from torchmetrics.functional.classification import multiclass_calibration_error

    probs = probabilities(scores)
    target = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    value = multiclass_calibration_error(
        torch.from_numpy(probs), target, num_classes=probs.shape[1], n_bins=n_bins, norm="l1"
    )
    return float(value)


def reliability_diagram(labels: np.ndarray, scores: np.ndarray, n_bins: int = N_BINS) -> pd.DataFrame:
    """The bins behind :func:`expected_calibration_error`, for a reliability diagram.

    Rows ``bin`` 0 … n_bins − 1 cover [b/n, (b+1)/n) and a last row ``bin = n_bins`` (lower = upper
    = 1) holds the confidences equal to 1 in float32, exactly as torchmetrics bins them (so
    Σ weight · |gap| is the ECE). Columns: ``lower``, ``upper``, ``count``, ``confidence`` (mean
    top-label confidence), ``accuracy`` (fraction correct), ``gap`` = accuracy − confidence
    (negative: over-confident), ``weight`` = count / N; confidence/accuracy NaN for an empty bin.
    """
    probs = torch.from_numpy(probabilities(scores))
    confidence, predicted = probs.max(dim=1)
    confidence = confidence.float()
    correct = (predicted == torch.as_tensor(np.asarray(labels, dtype=np.int64))).float()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=confidence.dtype)
    index = torch.bucketize(confidence, edges, right=True) - 1
    count = torch.zeros(n_bins + 1).scatter_add_(0, index, torch.ones_like(confidence))
    total_conf = torch.zeros(n_bins + 1).scatter_add_(0, index, confidence)
    total_acc = torch.zeros(n_bins + 1).scatter_add_(0, index, correct)
    n = count.numpy().astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.where(n > 0, total_conf.numpy() / n, np.nan)
        acc = np.where(n > 0, total_acc.numpy() / n, np.nan)
    lower = np.append(edges.numpy()[:-1], 1.0).astype(np.float64)
    upper = np.append(edges.numpy()[1:], 1.0).astype(np.float64)
    return pd.DataFrame(
        {"bin": np.arange(n_bins + 1), "lower": lower, "upper": upper, "count": n, "confidence": conf,
         "accuracy": acc, "gap": acc - conf, "weight": n / max(int(n.sum()), 1)}
    )  # fmt: skip


def fit_temperature(val_logits: np.ndarray, val_labels: np.ndarray, max_iter: int = 100) -> float:
    """Temperature scaling: the T > 0 minimising the validation NLL of softmax(logits / T), by L-BFGS
    on log T from T = 1 (one parameter; the argmax, so accuracy, is unchanged). Apply it to the test
    logits as ``logits / T``; T > 1 softens an over-confident model. Fit on validation, never test.
    T is rounded to 5 significant digits."""
    logits = torch.as_tensor(np.asarray(val_logits, dtype=np.float64))
    labels = torch.as_tensor(np.asarray(val_labels, dtype=np.int64))
    if logits.ndim != 2 or labels.shape != (logits.shape[0],) or not len(labels):
        raise ValueError(f"fit_temperature needs (N, C) logits and (N,) labels, got {tuple(logits.shape)}, "
                         f"{tuple(labels.shape)}")  # fmt: skip
    if not torch.isfinite(logits).all():
        raise ValueError("fit_temperature: the logits are not all finite")
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimiser.step(closure)
    # 5 significant digits: the logits' last bits move with the evaluating process's thread count, and
    # T would carry that noise into every scaled metric (and break run-for-run equality across launchers)
    return float(f"{float(log_t.detach().exp()):.5g}")


@register_metric
class ECE(Metric):
    """ece = Σ_b (n_b / N) |acc_b − conf_b|: 15 equal-width bins of the top-label confidence max_c p_c,
    acc_b / conf_b the accuracy / mean confidence of bin b (:func:`expected_calibration_error`, with
    torchmetrics). Scores are logits (softmaxed) unless each row already is a distribution."""

    name = "ece"
    description = "expected calibration error, 15 bins of the top-label confidence (lower is better)"
    direction = "min"

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        return {"ece": expected_calibration_error(ctx.labels, ctx.scores, N_BINS)}
