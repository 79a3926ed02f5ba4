"""Robustness curves (metric vs imperfection level per protocol) with relative and effective robustness.

From ``robustness.parquet`` (``fusionzoo eval`` / ``bench --eval``): for each dataset and protocol, the
mean over seeds of the *robustness metric* at every level (± 95% t-interval), one curve per
configuration, and MultiBench's summaries computed per run by :func:`fusionzoo.evaluation.views.
run_curves` (the same numbers as ``fusionzoo eval``'s printout and the terminal leaderboard's
``rel_robust_*`` / ``eff_robust_*`` columns), then mean ± 95% CI over seeds:

    relative robustness   R  = ∫ f dx̃                         (trapezoid, levels rescaled to [0, 1])
    effective robustness  ER = (1/K) Σ_{i≥1} (f_i − β_i),  β_i = r_i − r_0 + f_0
                          (r: the mean curve over the seeds of the run's reference configuration — the
                          clean-trained runs of the reference fusion with the run's data and settings,
                          :mod:`fusionzoo.robustness` — shifted to the run's clean score f_0;
                          averaged over the K perturbed levels both curves share)
    normalised            (s − min) / (max − min) over the configurations of the table

``f_i`` is the metric at level i (level 0 = the clean test set). The robustness metric is the view's
ranking metric when the robustness rows have it, else test accuracy (``views.robustness_metric``); it
is named in every title. The reference fusion is the one the last ``fusionzoo eval`` used (``[eval]
reference``, recorded in the runs directory). Without a reference run ER is not computed; with fewer
than two configurations (or all equal) nothing is normalised.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.evaluation.tables import EvalTables
from fusionzoo.evaluation.views import run_curves
from fusionzoo.report.base import Figure, Reporter, ResultsView, Section, Table, Text, register_reporter
from fusionzoo.report.common import apply_layout, fmt_num, metric_label, per_config, protocol_names
from fusionzoo.robustness import maxmin_normalise

__all__ = ["Robustness", "robustness_summary"]


def robustness_summary(view: ResultsView, reference: str | None = None) -> pd.DataFrame | None:
    """One row per (dataset, protocol, config_id): ``levels``, ``curve`` (mean per level), ``curve_ci``,
    ``clean``, ``relative`` ± ``relative_ci``, ``effective`` ± ``effective_ci``, ``relative_norm``,
    ``effective_norm``, ``reference`` (the reference fusion, ``""`` when the configuration has no
    reference run), ``reference_label`` (its reference configuration), ``seeds``, ``train_protocol``,
    ``protocol_name``, ``metric``; ``None`` without ``robustness.parquet`` rows for the view's ok runs."""
    from fusionzoo.results.stats import t_interval

    table = view.table("robustness")
    if table is None or not len(table):
        return None
    table = table[table["run_id"].astype(str).isin(set(view.ok["run_id"].astype(str)))]
    if not len(table):
        return None
    reference = reference or EvalTables(view.store).reference()
    per_run = run_curves(view.store, view.metric, reference)
    if not len(per_run):
        return None
    metric = str(per_run["metric"].iloc[0])
    config_of = dict(zip(view.runs["run_id"].astype(str), view.runs["config_id"].astype(str), strict=True))
    table = table.assign(
        config_id=table["run_id"].astype(str).map(config_of),
        level=table["level"].astype(float),
        train_protocol=table["train_protocol"].fillna("").astype(str) if "train_protocol" in table else "",
    )
    rows = []
    for (dataset, protocol), part in table.groupby(["dataset", "protocol"], sort=False):
        scores = per_run[(per_run["dataset"] == dataset) & (per_run["protocol"] == protocol)]
        for config_id, curve in part.groupby("config_id", sort=False):
            by_level = curve.groupby("level")[metric]
            levels = np.array(sorted(by_level.groups))
            points = [t_interval(by_level.get_group(level).astype(float).to_numpy()) for level in levels]
            mine = scores[scores["config_id"].astype(str) == config_id]
            rel_mean, rel_ci = t_interval(mine["rel_robust"].to_numpy(dtype=float))
            eff_mean, eff_ci = t_interval(mine["eff_robust"].to_numpy(dtype=float))
            first = curve.iloc[0]
            has_reference = bool(mine["eff_robust"].notna().any())
            rows.append(
                {
                    "dataset": dataset,
                    "protocol": protocol,
                    "protocol_name": str(first.get("protocol_name", protocol)),
                    "train_protocol": str(first["train_protocol"]),
                    "config_id": config_id,
                    "seeds": int(mine["run_id"].nunique()),
                    "levels": levels,
                    "curve": np.array([m for m, _ in points]),
                    "curve_ci": np.array([c for _, c in points]),
                    "clean": float(mine["clean"].mean()),
                    "relative": rel_mean,
                    "relative_ci": rel_ci,
                    "effective": eff_mean,
                    "effective_ci": eff_ci,
                    "reference": reference if has_reference else "",
                    "reference_label": str(mine["reference_label"].iloc[0]) if has_reference else "",
                    "metric": metric,
                }
            )
    if not rows:
        return None
    out = pd.DataFrame(rows)
    groups = out.groupby(["dataset", "protocol"], sort=False)
    out["relative_norm"] = groups["relative"].transform(maxmin_normalise)
    out["effective_norm"] = groups["effective"].transform(maxmin_normalise)
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
            names = protocol_names(protocols)
            fig = make_subplots(
                rows=rows, cols=cols, subplot_titles=[names[p] for p in protocols], horizontal_spacing=0.08
            )
            metric = str(part["metric"].iloc[0])
            name = metric_label(metric)
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
            fig.update_yaxes(title_text=f"{name} (%)", col=1)
            apply_layout(fig, f"{dataset}: {name} vs imperfection level", height=330 * rows + 60)
            blocks.append(
                Figure(fig, caption="mean over seeds ± 95% t-interval; level 0 = the clean test set")
            )
            table = pd.DataFrame(
                {
                    "configuration": part["config_id"].map(lambda c: labels.get(c, c)),
                    "protocol": part["protocol"],
                    "trained with": part["train_protocol"].replace("", "-"),
                    "seeds": part["seeds"],
                    f"clean {name} (%)": part["clean"].map(lambda v: fmt_num(v, 2, 100)),
                    "worst level (%)": part["curve"].map(lambda c: fmt_num(c[-1], 2, 100)),
                    f"relative R ({name})": [
                        _pm(m, c) for m, c in zip(part["relative"], part["relative_ci"], strict=True)
                    ],
                    "R norm.": part["relative_norm"].map(lambda v: fmt_num(v, 2)),
                    f"effective ER ({name})": [
                        _pm(m, c) for m, c in zip(part["effective"], part["effective_ci"], strict=True)
                    ],
                    "ER norm.": part["effective_norm"].map(lambda v: fmt_num(v, 2)),
                    "ER reference": part["reference_label"].replace("", "-"),
                }
            ).reset_index(drop=True)
            bold = pd.DataFrame(False, index=table.index, columns=table.columns)
            for protocol in protocols:
                mask = (part["protocol"] == protocol).to_numpy()
                for column, source in (
                    (f"relative R ({name})", "relative"),
                    (f"effective ER ({name})", "effective"),
                ):
                    values = part[source].where(mask)
                    if values.notna().any():
                        bold.loc[int(np.nanargmax(values.to_numpy())), column] = True
            reference = EvalTables(view.store).reference()
            ref_text = (
                f"the clean-trained {reference} runs with the configuration's data and training settings "
                "(column ER reference; mean over their seeds)"
                if (part["reference"] != "").any()
                else f"none ({reference} was not run with these settings: ER not computed)"
            )
            blocks.append(
                Table(
                    table,
                    caption=f"{dataset}: MultiBench's R and ER of test {name} (per seed, mean ± 95% CI); "
                    f"reference for ER: {ref_text}; normalised = (x − min)/(max − min) over this table; "
                    "bold: best",
                    bold=bold,
                )
            )
        blocks.append(
            Text(
                "Relative robustness R is the trapezoid area under the metric-vs-level curve (levels "
                "rescaled to [0, 1], so a flat curve scores its clean value); effective "
                "robustness ER averages, over the perturbed levels, the gap to the reference curve shifted "
                "to the configuration's own clean score, so it measures degradation beyond the "
                "reference's (MultiBench sums the gaps over its 11 levels: K × this mean on K levels)."
            )
        )
        return Section.of(self, *blocks)
