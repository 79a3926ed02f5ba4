"""Classification metrics (scikit-learn), as one flat ``dict[str, float]`` per evaluation.

    accuracy, top5                         top-1 / top-5 accuracy
    macro_precision, macro_recall, macro_f1
                                           unweighted mean over the classes that occur in the true
                                           labels or the predictions (scikit-learn's default label
                                           set), zero_division=0
    acc_head, acc_medium, acc_tail         accuracy on test rows whose true class is in that
                                           class-frequency bucket (rule below)
    acc_human                              accuracy on rows with a human label (``meta.is_human``)
    acc_geo_<geo>                          accuracy per language/market (``meta.geo``)

Bucket rule: classes are ranked by their number of *training* samples (ties broken by class id);
the most frequent third of the classes is ``head``, the next third ``medium``, the rest ``tail``
(with C classes: head = the first ceil(C/3), medium = the next ceil(C/3)). A bucket with no
evaluation rows gets NaN. Terciles of classes (not of samples) work on any dataset size, including
the balanced embedded one, where they simply split the classes in three.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, precision_recall_fscore_support, top_k_accuracy_score

__all__ = ["BUCKETS", "PRIMARY_METRICS", "class_buckets", "classification_metrics"]

BUCKETS = ("head", "medium", "tail")
PRIMARY_METRICS = ("accuracy", "top5", "macro_precision", "macro_recall", "macro_f1")


def class_buckets(train_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C,)`` array of bucket ids 0=head, 1=medium, 2=tail from the training label frequencies."""
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=num_classes)
    order = np.lexsort((np.arange(num_classes), -counts))  # most frequent first, then by id
    size = math.ceil(num_classes / 3)
    buckets = np.empty(num_classes, dtype=np.int64)
    for rank, cls in enumerate(order):
        buckets[cls] = min(rank // size, 2)
    return buckets


def _acc(mask: np.ndarray, correct: np.ndarray) -> float:
    return float(correct[mask].mean()) if mask.any() else float("nan")


def classification_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    num_classes: int | None = None,
    buckets: np.ndarray | None = None,
    meta: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Metrics of ``scores (N, C)`` (logits or probabilities) against ``labels (N,)``.

    ``buckets``: from :func:`class_buckets` (omit to skip the bucket metrics). ``meta``: N rows with
    ``geo`` and ``is_human`` columns (omit to skip those metrics).
    """
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    num_classes = int(num_classes or scores.shape[1])
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
        raise ValueError(f"scores {scores.shape} do not match labels {labels.shape}")
    if len(labels) == 0:
        return {name: float("nan") for name in PRIMARY_METRICS}
    preds = scores.argmax(axis=1)
    correct = preds == labels
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, preds, average="macro", zero_division=0
    )
    k = min(5, num_classes - 1) if num_classes > 2 else 1
    top5 = (
        top_k_accuracy_score(labels, scores, k=k, labels=np.arange(num_classes))
        if num_classes > 2
        else accuracy_score(labels, preds)
    )
    out = {
        "accuracy": float(accuracy_score(labels, preds)),
        "top5": float(top5),
        "macro_precision": float(precision),
        "macro_recall": float(recall),
        "macro_f1": float(f1),
    }
    if buckets is not None:
        row_bucket = np.asarray(buckets)[labels]
        for bucket_id, bucket in enumerate(BUCKETS):
            out[f"acc_{bucket}"] = _acc(row_bucket == bucket_id, correct)
    if meta is not None:
        if "is_human" in meta.columns:
            out["acc_human"] = _acc(meta["is_human"].to_numpy(dtype=bool), correct)
        if "geo" in meta.columns:
            geos = meta["geo"].astype(str).to_numpy()
            for geo in sorted(set(geos)):
                out[f"acc_geo_{geo or 'unknown'}"] = _acc(geos == geo, correct)
    return out
