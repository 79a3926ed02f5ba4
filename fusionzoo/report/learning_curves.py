"""Learning curves: the leaderboard metric against the training-set size per fusion.

From the runs of ``bench --train-fractions F,F,…`` (``ResultsView.curve_runs``: every training
fraction, same validation and test splits; the fractions are nested subsets,
:mod:`fusionzoo.data.variants`): per dataset and method (fusion, + head when heads vary) the mean over
seeds (and split seeds) of the metric at each fraction, with the 95 % t-interval. Does a complex
fusion only pay off with more data? Where its curve crosses a simpler one's.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from fusionzoo.report.base import Figure, Reporter, ResultsView, Section, Table, register_reporter
from fusionzoo.report.common import apply_layout, metric_label
from fusionzoo.results.stats import t_interval

__all__ = ["LearningCurves", "learning_curves"]


def learning_curves(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``dataset, method, train_fraction, n, mean, ci`` over the ok runs of ``runs``."""
    ok = runs[runs["status"] == "ok"]
    one_head = ok.groupby(["dataset", "fusion"])["head"].nunique().max() <= 1 if len(ok) else True
    method = ok["fusion"] if one_head else ok["fusion"] + " + " + ok["head"]
    rows = []
    for (dataset, name, fraction), part in ok.assign(method=method).groupby(
        ["dataset", "method", "train_fraction"], sort=True
    ):
        mean, ci = t_interval(part[metric].astype(float).to_numpy())
        rows.append({"dataset": dataset, "method": name, "train_fraction": float(fraction),
                     "n": len(part), "mean": mean, "ci": ci})  # fmt: skip
    return pd.DataFrame(rows, columns=["dataset", "method", "train_fraction", "n", "mean", "ci"])


@register_reporter
class LearningCurves(Reporter):
    """Metric against training fraction per method (module docstring)."""

    name = "learning_curves"
    title = "Learning curves"
    description = "test metric against the training-set size (bench --train-fractions), per fusion"
    formats = ("section",)
    order = 58

    def render(self, view: ResultsView, fmt: str = "section", **_: Any) -> Section:
        runs = view.curve_runs if view.curve_runs is not None else view.runs
        if "train_fraction" not in runs.columns or runs["train_fraction"].nunique() < 2:
            return Section.absent(
                self, "one training size only (bench --train-fractions 0.1,0.3,1 adds them)"
            )
        import plotly.graph_objects as go

        curves = learning_curves(runs, view.metric)
        blocks: list[Any] = []
        for dataset, part in curves.groupby("dataset", sort=False):
            fig = go.Figure()
            for method, rows in part.groupby("method", sort=True):
                fig.add_scatter(
                    x=list(rows["train_fraction"]), y=list(rows["mean"] * 100), mode="lines+markers",
                    name=method, error_y={"type": "data", "array": list(rows["ci"].fillna(0) * 100)},
                    text=[f"{n} run(s)" for n in rows["n"]],
                    hovertemplate="fraction %{x}: %{y:.2f} (%{text})<extra></extra>",
                )  # fmt: skip
            fig.update_xaxes(title_text="fraction of the training rows", type="log")
            fig.update_yaxes(title_text=f"test {metric_label(view.metric)} (%)")
            apply_layout(fig, f"{dataset}: learning curves", height=420)
            blocks.append(Figure(fig, caption=f"{dataset}: mean ± 95% CI over seeds at each training "
                                 "fraction (nested stratified subsets; same validation and test rows)"))  # fmt: skip
            table = part.assign(
                value=[f"{m * 100:.2f} ± {c * 100:.2f}" if c == c else f"{m * 100:.2f}"
                       for m, c in zip(part["mean"], part["ci"], strict=True)]
            ).pivot(index="method", columns="train_fraction", values="value")  # fmt: skip
            table.columns = [f"{c:g}" for c in table.columns]
            blocks.append(
                Table(table.reset_index(), caption=f"{dataset}: test {view.metric} (%) by training fraction")
            )
        return Section.of(self, *blocks)
