"""Accuracy per configuration: every seed as a point, the mean with its 95% t-interval as an error bar.

For the leaderboard metric and macro-F1 (side by side), configurations in leaderboard order: the bar
is ``mean ± t_{0.975, n−1} · s / √n`` over the ok seeds (``fusionzoo.results.stats.summarize``), the dots
are the seeds' own values (hover: seed and run id), so the spread behind each interval is visible.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusionzoo.report.base import Figure, Reporter, ResultsView, Section, register_reporter
from fusionzoo.report.common import apply_layout, metric_label, per_config, seed_jitter

__all__ = ["AccuracyPerFusion"]


@register_reporter
class AccuracyPerFusion(Reporter):
    """Per-seed points and mean ± 95% CI per configuration (module docstring)."""

    name = "accuracy"
    title = "Accuracy per fusion"
    description = "per-seed points and mean ± 95% CI bars of the metric and macro-F1 per configuration"
    formats = ("section",)
    order = 20

    def render(self, view: ResultsView, fmt: str = "section", **_: Any) -> Section:
        from plotly.subplots import make_subplots

        summary, labels, colours = per_config(view)
        if not len(view.ok):
            return Section.absent(self, "no finished runs")
        metrics = [view.metric]
        if "test_macro_f1" in view.runs.columns and view.metric != "test_macro_f1":
            metrics.append("test_macro_f1")
        blocks = []
        for dataset, part in summary.groupby("dataset", sort=False):
            part = part.reset_index(drop=True)
            fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[metric_label(m) for m in metrics])
            ticks = {"tickvals": list(range(len(part))), "ticktext": [labels[c] for c in part["config_id"]]}
            for col, metric in enumerate(metrics, 1):
                stats = (
                    part
                    if metric == view.metric
                    else view.summary(metric).set_index("config_id").loc[part["config_id"]].reset_index()
                )
                for i, row in stats.iterrows():
                    cid = str(row["config_id"])
                    runs = view.ok[view.ok["config_id"].astype(str) == cid].sort_values("seed")
                    values = runs[metric].astype(float).to_numpy() * 100
                    fig.add_scatter(
                        x=list(i + seed_jitter(len(values), seed=i)),
                        y=list(values),
                        mode="markers",
                        marker={"color": colours[cid], "size": 7, "opacity": 0.55},
                        name=f"{labels[cid]} (seeds)",
                        showlegend=False,
                        text=[
                            f"seed {s} · run {r}" for s, r in zip(runs["seed"], runs["run_id"], strict=True)
                        ],
                        hovertemplate="%{text}<br>%{y:.2f}%<extra></extra>",
                        row=1,
                        col=col,
                    )
                    ci = float(row["ci"]) * 100 if np.isfinite(row["ci"]) else 0.0
                    fig.add_scatter(
                        x=[i + 0.28],
                        y=[float(row["mean"]) * 100],
                        error_y={"type": "data", "array": [ci], "width": 6},
                        mode="markers",
                        marker={"color": colours[cid], "size": 10, "symbol": "diamond"},
                        name=labels[cid],
                        legendgroup=cid,
                        showlegend=col == 1,
                        hovertemplate=f"{labels[cid]}<br>mean %{{y:.2f}} ± {ci:.2f}<extra></extra>",
                        row=1,
                        col=col,
                    )
                fig.update_xaxes(**ticks, row=1, col=col)
                fig.update_yaxes(title_text=f"{metric_label(metric)} (%)", row=1, col=col)
            apply_layout(fig, f"{dataset}: per seed (dots) and mean ± 95% CI (diamonds)", height=440)
            blocks.append(
                Figure(
                    fig,
                    caption=f"{dataset}: {metric_label(view.metric)} and macro-F1 of every ok seed; the diamond and "
                    "bar are the mean and its 95% t-interval (no bar with one seed)",
                )
            )
        return Section.of(self, *blocks)
