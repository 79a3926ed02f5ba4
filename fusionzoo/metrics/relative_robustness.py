"""Relative robustness of a robustness curve (MultiBench)."""

from __future__ import annotations

from fusionzoo.metrics.base import CurveContext, Metric, register_metric
from fusionzoo.robustness import relative_robustness


@register_metric
class RelativeRobustness(Metric):
    """rel_robust_<protocol> = ∫₀¹ f(x̃) dx̃: trapezoid area under the accuracy–level curve with the
    levels rescaled to [0, 1] (MultiBench's relative robustness; a flat curve gives the clean score).
    Computed per run from ``robustness.parquet``; the leaderboard shows its mean over seeds.
    """

    name = "relative_robustness"
    description = "area under the accuracy-vs-level curve (trapezoid, levels rescaled to [0, 1])"
    kind = "robustness"
    columns = ("rel_robust_*",)

    def compute(self, ctx: CurveContext) -> dict[str, float]:
        return {f"rel_robust_{ctx.label}": relative_robustness(ctx.levels, ctx.values)}
