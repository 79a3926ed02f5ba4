"""Per-language (geo) accuracy heatmap: configurations × languages, mean test accuracy over seeds.

GLAMI-1M-style datasets carry a ``geo`` column (the listing's country/language); the ``per_geo``
metric writes ``test_acc_geo_<g>`` = accuracy on the test rows of language g for every run. Cells are
the mean over a configuration's ok seeds; the hover adds the 95% t-interval. The spread across a row
shows where a fusion's accuracy depends on the language.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusionzoo.report.base import Figure, Reporter, ResultsView, Section, register_reporter
from fusionzoo.report.common import apply_layout, per_config

__all__ = ["GeoHeatmap"]

PREFIX = "test_acc_geo_"


@register_reporter
class GeoHeatmap(Reporter):
    """Configurations × languages heatmap of test accuracy (module docstring)."""

    name = "geo"
    title = "Accuracy per language"
    description = "heatmap of test accuracy per language (test_acc_geo_* columns) and configuration"
    formats = ("section",)
    order = 50

    def render(self, view: ResultsView, fmt: str = "section", **_: Any) -> Section:
        import plotly.graph_objects as go

        from fusionzoo.results.stats import t_interval

        columns = [c for c in view.runs.columns if c.startswith(PREFIX) and view.ok[c].notna().any()]
        if not columns or not len(view.ok):
            return Section.absent(
                self, "the results have no test_acc_geo_* columns (the dataset has no geo column)"
            )
        summary, labels, _ = per_config(view)
        blocks = []
        for dataset, part in summary.groupby("dataset", sort=False):
            runs = view.ok[view.ok["dataset"] == dataset]
            geos = [c for c in columns if runs[c].notna().any()]
            if not geos:
                continue
            order = [c for c in part["config_id"].astype(str) if c in set(runs["config_id"].astype(str))]
            z = np.full((len(order), len(geos)), np.nan)
            ci = np.full_like(z, np.nan)
            for i, cid in enumerate(order):
                seeds = runs[runs["config_id"].astype(str) == cid]
                for j, column in enumerate(geos):
                    z[i, j], ci[i, j] = t_interval(seeds[column].astype(float).tolist())
            names = [c.removeprefix(PREFIX) for c in geos]
            text = [["" if np.isnan(v) else f"{v * 100:.1f}" for v in row] for row in z]
            hover = [[f"± {v * 100:.2f}" if np.isfinite(v) else "1 seed" for v in row] for row in ci]
            fig = go.Figure(
                go.Heatmap(
                    z=z * 100,
                    x=names,
                    y=[labels[c] for c in order],
                    text=text,
                    texttemplate="%{text}",
                    customdata=hover,
                    colorscale="Viridis",
                    colorbar={"title": {"text": "acc. (%)"}},
                    hovertemplate="%{y} · %{x}: %{z:.2f}% %{customdata}<extra></extra>",
                    meta={"cmap": "viridis"},
                )
            )
            fig.update_yaxes(autorange="reversed")
            apply_layout(fig, f"{dataset}: test accuracy per language (%)", height=140 + 36 * len(order))
            blocks.append(
                Figure(fig, caption=f"{dataset}: mean test accuracy over seeds on each language's test rows")
            )
        if not blocks:
            return Section.absent(self, "no per-language accuracies in the finished runs")
        return Section.of(self, *blocks)
