"""Accuracy per language / market."""

from __future__ import annotations

from fusionzoo.metrics.base import EvalContext, Metric, accuracy_on, register_metric


@register_metric
class GeoAccuracy(Metric):
    """acc_geo_<g> = accuracy on the rows of geo g (``meta.geo``; "" is written as ``unknown``)."""

    name = "per_geo"
    description = "accuracy per language/market (meta.geo)"
    columns = ("acc_geo_*",)

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        if ctx.meta is None or "geo" not in ctx.meta.columns:
            return {}
        geos = ctx.meta["geo"].astype(str).to_numpy()
        return {f"acc_geo_{g or 'unknown'}": accuracy_on(geos == g, ctx.correct) for g in sorted(set(geos))}
