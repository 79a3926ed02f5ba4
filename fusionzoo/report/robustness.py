"""Robustness curves (accuracy vs imperfection level per protocol) with relative and effective robustness.

From ``robustness.parquet`` (``fusionzoo eval`` / ``bench --eval``): for each dataset and protocol, the
mean over seeds of the leaderboard metric at every level (± 95% t-interval), one curve per
configuration, and MultiBench's summaries (``eval_scripts/robustness.py``), per seed then mean ± CI:

    relative robustness   R  = ∫ f(level) d level            (trapezoid over the protocol's levels)
    effective robustness  ER = Σ_i (f_i − β_i),  β_i = r_i − r_0 + f_0
                          (r: the reference configuration's mean curve, shifted to the method's
                          clean score f_0; reference = concat_mlp of the same dataset by default)
    normalised            (x − min) / (max − min) over the configurations of the table

``f_i`` is the metric at level i (level 0 = the clean test set). Without a reference configuration ER
is not computed; with fewer than two configurations (or all equal) nothing is normalised.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.report.base import Figure, Reporter, ResultsView, Section, Table, Text, register_reporter
from fusionzoo.report.common import apply_layout, fmt_num, metric_label, per_config

__all__ = ["REFERENCE", "Robustness", "robustness_summary"]

REFERENCE = "concat_mlp"


def _metric(view: ResultsView, table: pd.DataFrame) -> str:
    return view.metric if view.metric in table.columns else "test_accuracy"


def _normalise(values: pd.Series) -> pd.Series:
    finite = values.dropna()
    if len(finite) < 2 or math.isclose(finite.max(), finite.min()):
        return pd.Series(np.nan, index=values.index)
    return (values - finite.min()) / (finite.max() - finite.min())


def robustness_summary(view: ResultsView, reference: str = REFERENCE) -> pd.DataFrame | None:
    """One row per (dataset, protocol, config_id): ``levels``, ``curve`` (mean per level), ``curve_ci``,
    ``clean``, ``relative`` ± ``relative_ci``, ``effective`` ± ``effective_ci``, ``relative_norm``,
    ``effective_norm``, ``reference`` (the config_id used for ER), ``seeds``, ``train_protocol``,
    ``protocol_name``; ``None`` without ``robustness.parquet`` rows for the view's ok runs."""
    from scipy.integrate import trapezoid

    from fusionzoo.bench.stats import t_interval

    table = view.table("robustness")
    if table is None or not len(table):
        return None
    table = table[table["run_id"].astype(str).isin(set(view.ok["run_id"].astype(str)))]
    if not len(table):
        return None
    metric = _metric(view, table)
    config_of = dict(zip(view.runs["run_id"].astype(str), view.runs["config_id"].astype(str), strict=True))
    fusion_of = dict(zip(view.runs["config_id"].astype(str), view.runs["fusion"].astype(str), strict=True))
    table = table.assign(config_id=table["run_id"].astype(str).map(config_of))
    rows = []
    for (dataset, protocol), part in table.groupby(["dataset", "protocol"], sort=False):
        levels = np.sort(part["level"].astype(float).unique())
        curves: dict[str, dict[str, np.ndarray]] = {}  # config -> run -> values at every level
        for (config_id, run_id), run in part.groupby(["config_id", "run_id"], sort=False):
            values = run.groupby("level")[metric].mean().reindex(levels)
            if values.notna().all():
                curves.setdefault(config_id, {})[run_id] = values.to_numpy(dtype=float)
        means = {c: np.mean(list(runs.values()), axis=0) for c, runs in curves.items()}
        refs = [c for c in curves if fusion_of.get(c, "").split(":")[0] == reference]
        ref = max(refs, key=lambda c: means[c][0]) if refs else None
        for config_id, runs in curves.items():
            stacked = np.array(list(runs.values()))
            rel = [float(trapezoid(v, levels)) for v in stacked]
            eff = (
                [float(np.sum(v - (means[ref] - means[ref][0] + v[0]))) for v in stacked]
                if ref is not None
                else []
            )
            rel_mean, rel_ci = t_interval(rel)
            eff_mean, eff_ci = t_interval(eff) if eff else (float("nan"), float("nan"))
            first = part[part["config_id"] == config_id].iloc[0]
            rows.append(
                {
                    "dataset": dataset,
                    "protocol": protocol,
                    "protocol_name": str(first.get("protocol_name", protocol)),
                    "train_protocol": str(first.get("train_protocol", "") or ""),
                    "config_id": config_id,
                    "seeds": len(runs),
                    "levels": levels,
                    "curve": means[config_id],
                    "curve_ci": np.array([t_interval(stacked[:, i])[1] for i in range(len(levels))]),
                    "clean": float(means[config_id][0]),
                    "relative": rel_mean,
                    "relative_ci": rel_ci,
                    "effective": eff_mean,
                    "effective_ci": eff_ci,
                    "reference": ref or "",
                    "metric": metric,
                }
            )
    if not rows:
        return None
    out = pd.DataFrame(rows)
    groups = out.groupby(["dataset", "protocol"], sort=False)
    out["relative_norm"] = groups["relative"].transform(_normalise)
    out["effective_norm"] = groups["effective"].transform(_normalise)
    return out


def _pm(mean: float, ci: float, digits: int = 3) -> str:
    text = fmt_num(mean, digits)
    return text if math.isnan(ci) else f"{text} ± {fmt_num(ci, digits)}"


@register_reporter
class Robustness(Reporter):
    """Robustness curves per protocol and the relative/effective robustness table (module docstring)."""

    name = "robustness"
    title = "Robustness"
    description = "accuracy vs imperfection level per protocol; relative and effective robustness"
    formats = ("section",)
    order = 90

    def render(self, view: ResultsView, fmt: str = "section", **_: Any) -> Section:
        from plotly.subplots import make_subplots

        summary = robustness_summary(view)
        if summary is None:
            return Section.absent(
                self,
                "no robustness.parquet rows for these runs (run fusionzoo eval RUNS_DIR or bench --eval)",
            )
        leaderboard, labels, colours = per_config(view)
        order = {c: i for i, c in enumerate(leaderboard["config_id"].astype(str))}
        summary = summary.assign(_order=summary["config_id"].map(order)).sort_values(["_order", "protocol"])
        blocks: list[Any] = []
        for dataset, part in summary.groupby("dataset", sort=False):
            protocols = list(dict.fromkeys(part["protocol"]))
            cols = min(3, len(protocols))
            rows = math.ceil(len(protocols) / cols)
            fig = make_subplots(rows=rows, cols=cols, subplot_titles=protocols, horizontal_spacing=0.08)
            metric = str(part["metric"].iloc[0])
            for k, protocol in enumerate(protocols):
                for _, row in part[part["protocol"] == protocol].iterrows():
                    cid = row["config_id"]
                    fig.add_scatter(
                        x=list(row["levels"]),
                        y=list(row["curve"] * 100),
                        error_y={"type": "data", "array": list(np.nan_to_num(row["curve_ci"]) * 100)},
                        mode="lines+markers",
                        name=labels.get(cid, cid),
                        legendgroup=cid,
                        showlegend=k == 0,
                        line={"color": colours.get(cid)},
                        row=k // cols + 1,
                        col=k % cols + 1,
                    )
                fig.update_xaxes(title_text="level", row=k // cols + 1, col=k % cols + 1)
            fig.update_yaxes(title_text=f"{metric_label(metric)} (%)", col=1)
            apply_layout(
                fig, f"{dataset}: {metric_label(metric)} vs imperfection level", height=330 * rows + 60
            )
            blocks.append(
                Figure(fig, caption="mean over seeds ± 95% t-interval; level 0 = the clean test set")
            )
            table = pd.DataFrame(
                {
                    "configuration": part["config_id"].map(lambda c: labels.get(c, c)),
                    "protocol": part["protocol"],
                    "trained with": part["train_protocol"].replace("", "-"),
                    "seeds": part["seeds"],
                    "clean (%)": part["clean"].map(lambda v: fmt_num(v, 2, 100)),
                    "worst level (%)": part["curve"].map(lambda c: fmt_num(c[-1], 2, 100)),
                    "relative R": [
                        _pm(m, c) for m, c in zip(part["relative"], part["relative_ci"], strict=True)
                    ],
                    "R norm.": part["relative_norm"].map(lambda v: fmt_num(v, 2)),
                    "effective ER": [
                        _pm(m, c) for m, c in zip(part["effective"], part["effective_ci"], strict=True)
                    ],
                    "ER norm.": part["effective_norm"].map(lambda v: fmt_num(v, 2)),
                }
            ).reset_index(drop=True)
            bold = pd.DataFrame(False, index=table.index, columns=table.columns)
            for protocol in protocols:
                mask = (part["protocol"] == protocol).to_numpy()
                for column, source in (("relative R", "relative"), ("effective ER", "effective")):
                    values = part[source].where(mask)
                    if values.notna().any():
                        bold.loc[int(np.nanargmax(values.to_numpy())), column] = True
            references = {labels.get(r, r) for r in part["reference"] if r}
            ref_text = ", ".join(sorted(references)) or f"none ({REFERENCE} was not run: ER not computed)"
            blocks.append(
                Table(
                    table,
                    caption=f"{dataset}: MultiBench's R and ER (per seed, mean ± 95% CI); reference "
                    f"for ER: {ref_text}; normalised = (x − min)/(max − min) over this table; bold: best",
                    bold=bold,
                )
            )
        blocks.append(
            Text(
                "Relative robustness R is the trapezoid area under the metric-vs-level curve; effective "
                "robustness ER sums, over levels, the gap to the reference curve shifted to the "
                "configuration's own clean score, so it measures degradation beyond the reference's."
            )
        )
        return Section.of(self, *blocks)
