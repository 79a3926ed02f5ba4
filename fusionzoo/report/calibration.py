"""Calibration: ECE before and after temperature scaling, and the reliability diagram per fusion.

From the results table (``test_ece``; ``test_ece_ts`` and ``test_temperature``: temperature scaling
fitted on validation, :mod:`fusionzoo.train.calibration`) and the ``reliability`` diagnostics rows
(the bins of the top-label confidence of each run's test predictions). Per dataset: a table of mean
ECE, scaled ECE and temperature over seeds per configuration, and the reliability diagram
(accuracy against mean confidence per bin, pooled over seeds by bin counts: Σ n_b·acc_b / Σ n_b);
the diagonal is perfect calibration, points below it are over-confident. ECE at each robustness
level is a column of ``robustness.parquet`` (``fusionzoo eval``), shown in the Robustness section.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from fusionzoo.report.base import Figure, Reporter, ResultsView, Section, Table, register_reporter
from fusionzoo.report.common import apply_layout, per_config

__all__ = ["Calibration", "reliability_table"]


def reliability_table(
    diagnostics: pd.DataFrame, runs: pd.DataFrame, name: str = "reliability"
) -> pd.DataFrame:
    """Per configuration and bin: ``count``, ``confidence``, ``accuracy`` pooled over its runs."""
    rows = diagnostics[
        (diagnostics["kind"] == "reliability") & diagnostics["name"].str.startswith(f"{name}:")
    ]
    if not len(rows):
        return pd.DataFrame(columns=["config_id", "bin", "count", "confidence", "accuracy"])
    wide = (
        rows.assign(field=rows["name"].str.split(":").str[1])
        .pivot_table(index=["run_id", "bin"], columns="field", values="value", aggfunc="first")
        .reset_index()
    )
    config_of = dict(zip(runs["run_id"].astype(str), runs["config_id"].astype(str), strict=True))
    wide["config_id"] = wide["run_id"].astype(str).map(config_of)
    wide = wide[wide["count"] > 0]
    wide = wide.assign(conf_sum=wide["confidence"] * wide["count"], acc_sum=wide["accuracy"] * wide["count"])
    pooled = wide.groupby(["config_id", "bin"], as_index=False)[["count", "conf_sum", "acc_sum"]].sum()
    pooled["confidence"] = pooled["conf_sum"] / pooled["count"]
    pooled["accuracy"] = pooled["acc_sum"] / pooled["count"]
    return pooled[["config_id", "bin", "count", "confidence", "accuracy"]]


@register_reporter
class Calibration(Reporter):
    """ECE (raw, temperature-scaled) and reliability diagrams (module docstring)."""

    name = "calibration"
    title = "Calibration"
    description = "ECE before/after temperature scaling (fitted on validation) and reliability diagrams"
    formats = ("section",)
    order = 55

    def render(self, view: ResultsView, fmt: str = "section", **_: Any) -> Section:
        ok = view.ok
        if not len(ok) or "test_ece" not in ok.columns:
            return Section.absent(self, "no test_ece column in the results (runs of an older fusionzoo)")
        summary, labels, colours = per_config(view)
        diagnostics = view.table("diagnostics")
        curves = reliability_table(diagnostics, ok) if diagnostics is not None else None
        columns = [c for c in ("test_ece", "test_ece_ts", "test_temperature") if c in ok.columns]
        blocks: list[Any] = []
        for dataset, part in summary.groupby("dataset", sort=False):
            ids = part["config_id"].astype(str).tolist()
            runs = ok[ok["config_id"].astype(str).isin(ids)]
            means = runs.groupby(runs["config_id"].astype(str))[columns].mean().reindex(ids)
            table = pd.DataFrame({"configuration": [labels.get(c, c) for c in ids]})
            names = {
                "test_ece": "ECE",
                "test_ece_ts": "ECE after temperature scaling",
                "test_temperature": "T",
            }
            for column in columns:
                table[names[column]] = [f"{v:.3f}" for v in means[column]]
            blocks.append(
                Table(table, caption=f"{dataset}: mean over seeds; 15 equal-width bins of the top-label "
                      "confidence; T fitted on validation (T > 1: over-confident)")
            )  # fmt: skip
            if curves is None or not len(curves):
                continue
            import plotly.graph_objects as go

            fig = go.Figure()
            fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#888"},
                            name="perfect calibration")  # fmt: skip
            for cid in ids:
                rows = curves[curves["config_id"] == cid]
                if len(rows):
                    fig.add_scatter(
                        x=list(rows["confidence"]), y=list(rows["accuracy"]), mode="lines+markers",
                        name=labels.get(cid, cid), line={"color": colours.get(cid)},
                        text=[f"{int(n)} predictions" for n in rows["count"]],
                        hovertemplate="confidence %{x:.2f}: accuracy %{y:.2f} (%{text})<extra></extra>",
                    )  # fmt: skip
            fig.update_xaxes(title_text="mean confidence", range=[0, 1])
            fig.update_yaxes(title_text="accuracy", range=[0, 1])
            apply_layout(fig, f"{dataset}: reliability diagram (test split, pooled over seeds)", height=420)
            blocks.append(Figure(fig, caption=f"{dataset}: reliability diagram before temperature scaling; "
                                 "below the diagonal = over-confident"))  # fmt: skip
        return Section.of(self, *blocks)
