"""Effective robustness of a robustness curve against a reference fusion (MultiBench)."""

from __future__ import annotations

from fusionzoo.evaluation.summaries import effective_robustness
from fusionzoo.metrics.base import CurveContext, Metric, register_metric


@register_metric
class EffectiveRobustness(Metric):
    """eff_robust_<protocol> = Σ_i (f_i − β_i), β = r − r_0 + f_0: the reference fusion's mean curve r
    (``concat_mlp`` by default) shifted to the run's clean score f_0 (MultiBench's effective
    robustness; > 0: degrades less than the reference). NaN when no reference curve exists.
    """

    name = "effective_robustness"
    description = "Σ (f_i − β_i) with β the reference fusion's curve shifted to the same clean score"
    kind = "robustness"
    columns = ("eff_robust_*",)

    def compute(self, ctx: CurveContext) -> dict[str, float]:
        if ctx.reference is None:
            return {f"eff_robust_{ctx.label}": float("nan")}
        return {f"eff_robust_{ctx.label}": effective_robustness(ctx.levels, ctx.values, ctx.reference)}
