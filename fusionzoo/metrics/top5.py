"""Top-5 accuracy."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, top_k_accuracy_score

from fusionzoo.metrics.base import EvalContext, Metric, register_metric


@register_metric
class Top5(Metric):
    """top5 = (1/N) Σ_i 1[y_i among the k highest scores of row i], k = min(5, C − 1)
    (scikit-learn ``top_k_accuracy_score``; with 2 classes it is the top-1 accuracy)."""

    name = "top5"
    description = "top-5 accuracy (k = min(5, C - 1))"

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        if ctx.num_classes <= 2:
            return {"top5": float(accuracy_score(ctx.labels, ctx.preds))}
        k = min(5, ctx.num_classes - 1)
        score = top_k_accuracy_score(ctx.labels, ctx.scores, k=k, labels=np.arange(ctx.num_classes))
        return {"top5": float(score)}
