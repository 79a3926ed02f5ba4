"""Accuracy on head, medium and tail classes (by training frequency)."""

from __future__ import annotations

import math

import numpy as np

from fusionzoo.metrics.base import EvalContext, Metric, accuracy_on, register_metric

BUCKETS = ("head", "medium", "tail")


def class_buckets(train_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C,)`` bucket ids 0 = head, 1 = medium, 2 = tail: classes ranked by their number of *training*
    samples (ties by class id); the first ceil(C/3) are head, the next ceil(C/3) medium, the rest tail."""
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=num_classes)
    order = np.lexsort((np.arange(num_classes), -counts))  # most frequent first, then by id
    size = math.ceil(num_classes / 3)
    buckets = np.empty(num_classes, dtype=np.int64)
    for rank, cls in enumerate(order):
        buckets[cls] = min(rank // size, 2)
    return buckets


@register_metric
class ClassBucketAccuracy(Metric):
    """acc_<bucket> = accuracy on the rows whose true class is in that class-frequency bucket
    (:func:`class_buckets`; terciles of classes, not of samples, so it works on any dataset size).
    NaN for a bucket without rows, and for all three when no training buckets are known."""

    name = "class_buckets"
    description = "accuracy on head / medium / tail classes (terciles by training frequency)"
    columns = ("acc_head", "acc_medium", "acc_tail")

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        if ctx.buckets is None:
            return {}
        row_bucket = np.asarray(ctx.buckets)[ctx.labels]
        return {f"acc_{b}": accuracy_on(row_bucket == i, ctx.correct) for i, b in enumerate(BUCKETS)}
