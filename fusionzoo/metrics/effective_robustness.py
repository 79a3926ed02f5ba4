"""Effective robustness of a robustness curve against a reference fusion (MultiBench)."""

from __future__ import annotations

from fusionzoo.metrics.base import CurveContext, Metric, register_metric
from fusionzoo.robustness import effective_robustness


@register_metric
class EffectiveRobustness(Metric):
    """eff_robust_<protocol> = (1/K) Σ_{i=1..K} (f_i − β_i), β = r − r_0 + f_0: the mean curve r of the
    run's reference configuration (the reference fusion, ``concat_mlp`` by default, clean-trained with
    the run's data and settings) shifted to the run's clean score f_0, averaged over the K perturbed
    levels (MultiBench's effective robustness sums them, which grows with the grid; > 0: degrades
    less than the reference). NaN when no reference curve exists.
    """

    name = "effective_robustness"
    description = "mean (f_i − β_i) over levels, β the reference's curve shifted to the same clean score"
    kind = "robustness"
    columns = ("eff_robust_*",)

    def compute(self, ctx: CurveContext) -> dict[str, float]:
        if ctx.reference is None:
            return {f"eff_robust_{ctx.label}": float("nan")}
        return {f"eff_robust_{ctx.label}": effective_robustness(ctx.levels, ctx.values, ctx.reference)}
