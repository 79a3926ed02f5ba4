"""Model diagnostics of the test split: FLUID's gate values and the MoE head's expert utilisation.

From ``diagnostics.parquet`` (written by ``fusionzoo bench`` from the models' extras, see
:mod:`fusionzoo.train.diagnostics`), pooled over a configuration's seeds:

- ``histogram`` rows (e.g. ``fusion.gate``: FLUID's per-query gate g in ``g·image + (1−g)·text``):
  the share of values per bin of [0, 1]; the table gives the mean gate Σ centre·count / Σ count and
  the share above 0.5 (image-weighted);
- ``counts`` rows (e.g. ``head.expert_counts``: how often each expert was a token's top-k choice):
  each expert's share of the assignments, mean over seeds, against the uniform share 1/E; the table
  gives the normalised entropy H/log E (1 = perfectly balanced) and max/min share.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.report.base import Figure, Reporter, ResultsView, Section, Table, register_reporter
from fusionzoo.report.common import apply_layout, fmt_num, per_config

__all__ = ["Diagnostics", "expert_balance", "histogram_stats"]


def histogram_stats(frame: pd.DataFrame) -> tuple[float, float]:
    """(mean, share above 0.5) of histogram rows (``edge_low``, ``edge_high``, ``value`` counts)."""
    centres = (frame["edge_low"].astype(float) + frame["edge_high"].astype(float)) / 2
    counts = frame["value"].astype(float)
    total = float(counts.sum())
    if total <= 0:
        return float("nan"), float("nan")
    return float((centres * counts).sum() / total), float(counts[centres > 0.5].sum() / total)


def expert_balance(shares: np.ndarray) -> tuple[float, float]:
    """(normalised entropy H / log E, max share / min share) of expert shares summing to 1."""
    shares = np.asarray(shares, dtype=float)
    if len(shares) < 2 or not np.isfinite(shares).all():
        return float("nan"), float("nan")
    positive = shares[shares > 0]
    entropy = float(-(positive * np.log(positive)).sum() / math.log(len(shares)))
    return entropy, float(shares.max() / shares.min()) if shares.min() > 0 else float("inf")


@register_reporter
class Diagnostics(Reporter):
    """Gate value distributions and expert utilisation (module docstring)."""

    name = "diagnostics"
    title = "FLUID diagnostics: gates and experts"
    description = "gate value distribution and MoE expert utilisation on the test split (diagnostics.parquet)"
    formats = ("section",)
    order = 110

    def render(self, view: ResultsView, fmt: str = "section", **_: Any) -> Section:
        table = view.table("diagnostics")
        if table is None or not len(table):
            return Section.absent(
                self,
                "no diagnostics.parquet rows (models without gates or experts, or runs "
                "recorded before diagnostics were kept)",
            )
        summary, labels, colours = per_config(view)
        config_of = dict(
            zip(view.runs["run_id"].astype(str), view.runs["config_id"].astype(str), strict=True)
        )
        table = table.assign(config_id=table["run_id"].astype(str).map(config_of))
        order = [c for c in summary["config_id"].astype(str) if c in set(table["config_id"])]
        blocks: list[Any] = []
        rows: list[dict[str, Any]] = []
        for name in sorted(table.loc[table["kind"] == "histogram", "name"].unique()):
            blocks.append(self._histogram(table[(table["name"] == name)], name, order, labels, colours, rows))
        for name in sorted(table.loc[table["kind"] == "counts", "name"].unique()):
            blocks.append(self._counts(table[(table["name"] == name)], name, order, labels, colours, rows))
        if rows:
            blocks.append(
                Table(pd.DataFrame(rows), caption="pooled over seeds (histograms) / mean over seeds (shares)")
            )
        return Section.of(self, *blocks)

    @staticmethod
    def _histogram(
        part: pd.DataFrame, name: str, order: list[str], labels: dict, colours: dict, rows: list
    ) -> Figure:
        import plotly.graph_objects as go

        fig = go.Figure()
        for cid in [c for c in order if c in set(part["config_id"])]:
            pooled = (
                part[part["config_id"] == cid]
                .groupby("bin")
                .agg(edge_low=("edge_low", "first"), edge_high=("edge_high", "first"), value=("value", "sum"))
            )
            total = float(pooled["value"].sum()) or 1.0
            centres = (pooled["edge_low"] + pooled["edge_high"]) / 2
            fig.add_bar(
                x=[f"{v:.3f}" for v in centres],
                y=list(pooled["value"] / total * 100),
                name=labels.get(cid, cid),
                marker={"color": colours.get(cid)},
            )
            mean, above = histogram_stats(pooled)
            seeds = part.loc[part["config_id"] == cid, "run_id"].nunique()
            rows.append(
                {
                    "configuration": labels.get(cid, cid),
                    "diagnostic": name,
                    "seeds": str(seeds),
                    "values": f"{int(total):,}",
                    "summary": f"mean {fmt_num(mean, 3)}, {fmt_num(above, 1, 100)}% above 0.5",
                }
            )
        fig.update_layout(barmode="group", bargap=0.1)
        fig.update_xaxes(title_text=f"{name} (bin centre)")
        fig.update_yaxes(title_text="share of values (%)")
        apply_layout(fig, f"{name}: distribution on the test split", height=380)
        return Figure(fig, caption=f"{name}: share of values per bin of [0, 1], all test rows of all seeds")

    @staticmethod
    def _counts(
        part: pd.DataFrame, name: str, order: list[str], labels: dict, colours: dict, rows: list
    ) -> Figure:
        import plotly.graph_objects as go

        fig = go.Figure()
        experts = int(part["bin"].max()) + 1
        for cid in [c for c in order if c in set(part["config_id"])]:
            per_run = part[part["config_id"] == cid].pivot_table(
                index="run_id", columns="bin", values="value", aggfunc="sum"
            )
            per_run = per_run.reindex(columns=range(experts)).fillna(0.0)
            shares = (per_run.div(per_run.sum(axis=1).replace(0, np.nan), axis=0)).mean(axis=0).to_numpy()
            fig.add_bar(
                x=[f"expert {i}" for i in range(experts)],
                y=list(shares * 100),
                name=labels.get(cid, cid),
                marker={"color": colours.get(cid)},
            )
            entropy, ratio = expert_balance(shares)
            rows.append(
                {
                    "configuration": labels.get(cid, cid),
                    "diagnostic": name,
                    "seeds": str(len(per_run)),
                    "values": f"{int(per_run.to_numpy().sum()):,}",
                    "summary": f"entropy {fmt_num(entropy, 3)} of 1, max/min share {fmt_num(ratio, 2)}",
                }
            )
        fig.add_hline(y=100 / experts, line_dash="dash", line_color="#888")
        fig.update_layout(barmode="group")
        fig.update_yaxes(title_text="share of assignments (%)")
        apply_layout(fig, f"{name}: expert utilisation on the test split", height=380)
        return Figure(
            fig,
            caption=f"{name}: each expert's share of the top-k assignments (mean over seeds); "
            f"dashed: uniform 1/{experts}",
        )
