"""Accuracy–FLOPs and accuracy–latency Pareto plots, and the efficiency table.

Each configuration's cost comes from ``efficiency.parquet`` (``fusionzoo eval --efficiency``; one
measurement per efficiency key, matched to the runs by :func:`fusionzoo.report.common.
efficiency_by_config`): forward GFLOPs per sample and p50 latency at batch 1, against the mean
leaderboard metric (± 95% CI). A configuration is on the Pareto front when no other one is at least
as good on both axes and strictly better on one (lower cost, higher metric;
:func:`fusionzoo.robustness.pareto_front`); the front is the line.

Distillation (``bench --distill-from``): a student (a run whose config names ``distill_teacher``) is a
triangle labelled "student of <teacher>", its teacher a star labelled "teacher", and a dotted line
joins each student to its teacher when both are in the view (students written to the teacher's runs
directory, or a report over both), so the accuracy and cost each student trades are side by side.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.report.base import Figure, Reporter, ResultsView, Section, Table, register_reporter
from fusionzoo.report.common import apply_layout, efficiency_by_config, fmt_num, metric_label, per_config
from fusionzoo.robustness import pareto_front

__all__ = ["ParetoPlots", "distill_teachers", "role_labels"]

AXES = (("gflops_forward", "forward GFLOPs per sample"), ("latency_p50_ms", "latency p50 at batch 1 (ms)"))


def distill_teachers(view: ResultsView) -> dict[str, str]:
    """``{student config_id: teacher config_id}`` of the view's distilled configurations."""
    import json

    runs = view.ok
    if "config" not in runs.columns or not len(runs):
        return {}
    teachers = runs["config"].map(lambda c: str(json.loads(str(c) or "{}").get("distill_teacher", "") or ""))
    pairs = {str(cid): t.partition(":")[0] for cid, t in zip(runs["config_id"], teachers, strict=True) if t}
    return pairs


def role_labels(labels: dict[str, str], teacher_of: dict[str, str]) -> dict[str, str]:
    """Labels with the distillation role: "… · teacher", "… · student of <teacher label>"."""
    teachers = set(teacher_of.values())
    out = dict(labels)
    for cid, label in labels.items():
        if cid in teacher_of:
            out[cid] = f"{label} · student of {labels.get(teacher_of[cid], teacher_of[cid][:10])}"
        elif cid in teachers:
            out[cid] = f"{label} · teacher"
    return out


def _symbol(config_id: str, on_front: bool, teacher_of: dict[str, str]) -> str:
    if config_id in teacher_of:
        return "triangle-up"
    if config_id in set(teacher_of.values()):
        return "star"
    return "diamond" if on_front else "circle"


@register_reporter
class ParetoPlots(Reporter):
    """Metric vs forward FLOPs and vs latency, with the Pareto front (module docstring)."""

    name = "pareto"
    title = "Cost: accuracy vs FLOPs and latency"
    description = (
        "accuracy–FLOPs and accuracy–latency Pareto plots and the efficiency table (efficiency.parquet)"
    )
    formats = ("section",)
    order = 100

    def render(self, view: ResultsView, fmt: str = "section", **_: Any) -> Section:
        from plotly.subplots import make_subplots

        efficiency = efficiency_by_config(view)
        if efficiency is None:
            return Section.absent(
                self,
                "no efficiency.parquet rows for these configurations (fusionzoo eval RUNS_DIR --efficiency)",
            )
        summary, labels, colours = per_config(view)
        teacher_of = distill_teachers(view)
        labels = role_labels(labels, teacher_of)
        merged = summary.assign(config_id=summary["config_id"].astype(str)).merge(
            efficiency, on="config_id", suffixes=("", "_eff")
        )
        merged = merged[merged["n"] > 0]
        if not len(merged):
            return Section.absent(self, "no finished runs with an efficiency measurement")
        blocks: list[Any] = []
        for dataset, part in merged.groupby("dataset", sort=False):
            part = part.reset_index(drop=True)
            axes = [(c, t) for c, t in AXES if c in part.columns and part[c].notna().any()]
            fig = make_subplots(rows=1, cols=len(axes), subplot_titles=[t for _, t in axes])
            fronts = {}
            for col, (column, title) in enumerate(axes, 1):
                cost, score = (
                    part[column].astype(float).to_numpy(),
                    part["mean"].astype(float).to_numpy() * 100,
                )
                points = pd.DataFrame({"cost": cost, "score": score})
                front = pareto_front(points, "cost", "score", maximise_y=view.direction() == "max").to_numpy()
                fronts[column] = front
                for i, row in part.iterrows():
                    cid = row["config_id"]
                    fig.add_scatter(
                        x=[cost[i]],
                        y=[score[i]],
                        error_y={"type": "data", "array": [float(np.nan_to_num(row["ci"])) * 100]},
                        mode="markers",
                        marker={
                            "color": colours.get(cid),
                            "size": 11,
                            "symbol": _symbol(cid, bool(front[i]), teacher_of),
                        },
                        name=labels.get(cid, cid),
                        legendgroup=cid,
                        showlegend=col == 1,
                        hovertemplate=f"{labels.get(cid, cid)}<br>{title}: %{{x:.4g}}<br>%{{y:.2f}}%<extra></extra>",
                        row=1,
                        col=col,
                    )
                index = {str(c): i for i, c in enumerate(part["config_id"])}
                for student, teacher in teacher_of.items():  # each student joined to its teacher
                    if student in index and teacher in index:
                        pair = [index[student], index[teacher]]
                        fig.add_scatter(
                            x=list(cost[pair]),
                            y=list(score[pair]),
                            mode="lines",
                            line={"color": colours.get(student), "dash": "dot", "width": 1},
                            showlegend=False,
                            hoverinfo="skip",
                            row=1,
                            col=col,
                        )
                order = np.argsort(cost[front])
                fig.add_scatter(
                    x=list(cost[front][order]),
                    y=list(score[front][order]),
                    mode="lines",
                    line={"color": "#888", "dash": "dash"},
                    name="Pareto front",
                    showlegend=col == 1,
                    hoverinfo="skip",
                    row=1,
                    col=col,
                )
                fig.update_xaxes(title_text=title, type="log", row=1, col=col)
            fig.update_yaxes(title_text=f"{metric_label(view.metric)} (%)", col=1)
            apply_layout(fig, f"{dataset}: {metric_label(view.metric)} vs cost", height=420)
            blocks.append(
                Figure(
                    fig,
                    caption=f"{dataset}: mean ± 95% CI over seeds vs cost (log axis); diamonds and the dashed "
                    "line: the Pareto front (nothing cheaper is as good)"
                    + (
                        "; stars: distillation teachers, triangles: their students (dotted: student → teacher)"
                        if teacher_of
                        else ""
                    ),
                )
            )
            blocks.append(self._table(part, labels, fronts))
        return Section.of(self, *blocks)

    @staticmethod
    def _table(part: pd.DataFrame, labels: dict[str, str], fronts: dict[str, np.ndarray]) -> Table:
        from fusionzoo.report.leaderboard import fmt_params

        def column(name: str, digits: int) -> list[str]:
            return [fmt_num(v, digits) for v in part[name]] if name in part else ["-"] * len(part)

        frame = pd.DataFrame(
            {
                "configuration": part["config_id"].map(lambda c: labels.get(c, c)),
                "params (fwd)": [fmt_params(v) for v in part.get("params_eff", part["params"])],
                "GFLOPs fwd / sample": column("gflops_forward", 4),
                "GFLOPs train step": column("gflops_train_step", 3),
                "latency p50 ms": column("latency_p50_ms", 2),
                "latency p95 ms": column("latency_p95_ms", 2),
                "throughput /s": column("throughput", 0),
                "peak MB": column("peak_memory_mb", 1),
                "device": part.get("device", pd.Series(["-"] * len(part))).astype(str),
                "threads": part.get("threads", pd.Series(["-"] * len(part))).astype(str),
                "on front (FLOPs / latency)": [
                    " / ".join("yes" if fronts[c][i] else "no" for c in fronts) for i in range(len(part))
                ],
            }
        )
        return Table(
            frame,
            caption="efficiency.parquet: parameters on the forward path, FLOPs with "
            "torch.utils.flop_counter (2·MAC), latency/throughput with torch.utils.benchmark",
        )
