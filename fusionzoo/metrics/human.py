"""Accuracy on the human-labelled rows."""

from __future__ import annotations

from fusionzoo.metrics.base import EvalContext, Metric, accuracy_on, register_metric


@register_metric
class HumanAccuracy(Metric):
    """acc_human = accuracy on rows whose label_source is human (admin, quality-check, custom-tag:
    ``meta.is_human``); GLAMI-1M's rule-based labels (label_source NaN) are noisy."""

    name = "human"
    description = "accuracy on human-labelled rows (meta.is_human)"
    columns = ("acc_human",)

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        if ctx.meta is None or "is_human" not in ctx.meta.columns:
            return {}
        return {"acc_human": accuracy_on(ctx.meta["is_human"].to_numpy(dtype=bool), ctx.correct)}
