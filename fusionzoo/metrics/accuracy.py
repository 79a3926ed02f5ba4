"""Top-1 accuracy."""

from __future__ import annotations

from sklearn.metrics import accuracy_score

from fusionzoo.metrics.base import EvalContext, Metric, register_metric


@register_metric
class Accuracy(Metric):
    """accuracy = (1/N) Σ_i 1[argmax_c s_ic = y_i]  (scikit-learn ``accuracy_score``)."""

    name = "accuracy"
    description = "top-1 accuracy"

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        return {"accuracy": float(accuracy_score(ctx.labels, ctx.preds))}
