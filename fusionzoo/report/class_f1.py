"""Per-class F1 on head, medium and tail classes (classes ranked by their training frequency).

From each ok run's test predictions (``predictions/<run>.npy``) and the classes of its data
fingerprint (``classes.parquet``, written by ``fusionzoo bench``: names, train counts and the
head/medium/tail bucket the trainer's ``acc_head``/``acc_medium``/``acc_tail`` use):

    F1_c = 2·TP_c / (2·TP_c + FP_c + FN_c)       per class c (sklearn ``f1_score(average=None)``)
    bucket macro-F1 = mean of F1_c over the bucket's classes with test rows, per seed → mean ± 95% CI

The figure shows the mean F1 over seeds of every class, classes sorted from most to least frequent in
training, with the buckets shaded; the table the bucket macro-F1 per configuration.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.report.base import Figure, Reporter, ResultsView, Section, Table, register_reporter
from fusionzoo.report.common import apply_layout, fmt_num, per_config

__all__ = ["ClassF1", "per_class_f1"]

BUCKETS = ("head", "medium", "tail")
SHADES = {"head": "rgba(99,110,250,0.07)", "medium": "rgba(0,204,150,0.07)", "tail": "rgba(239,85,59,0.07)"}


def per_class_f1(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C,)`` F1 of each class; NaN for classes without test rows."""
    from sklearn.metrics import f1_score

    scores = f1_score(labels, predictions, labels=np.arange(num_classes), average=None, zero_division=0.0)
    present = np.bincount(labels, minlength=num_classes) > 0
    return np.where(present, scores, np.nan)


@register_reporter
class ClassF1(Reporter):
    """Per-class F1, classes by training frequency, head/medium/tail buckets (module docstring)."""

    name = "class_f1"
    title = "Per-class F1: head, medium and tail classes"
    description = "per-class F1 (classes by training frequency) and macro-F1 per head/medium/tail bucket"
    formats = ("section",)
    order = 40

    def render(self, view: ResultsView, fmt: str = "section", **_: Any) -> Section:
        from fusionzoo.results.stats import t_interval

        classes = view.table("classes")
        if classes is None or not len(classes):
            return Section.absent(
                self,
                "no classes.parquet for these runs' data (fusionzoo bench writes it when it prepares the data)",
            )
        summary, labels, colours = per_config(view)
        blocks: list[Any] = []
        for fingerprint, table in classes.groupby("data_fingerprint", sort=False):
            table = table.sort_values("class_id")
            num_classes = len(table)
            order = np.lexsort((table["class_id"].to_numpy(), -table["train_count"].to_numpy()))
            bucket = table["bucket"].to_numpy()
            runs = view.ok[view.ok["data_fingerprint"] == fingerprint]
            scores: dict[str, list[np.ndarray]] = {}
            for _, run in runs.iterrows():
                found = view.store.predictions(str(run["run_id"]))
                if found is not None and len(found[1]) and found[1].max() < num_classes:
                    scores.setdefault(str(run["config_id"]), []).append(
                        per_class_f1(found[0], found[1], num_classes)
                    )
            if not scores:
                continue
            dataset = str(table["dataset"].iloc[0])
            ranked = [c for c in summary["config_id"].astype(str) if c in scores]
            fig = _figure(table, order, bucket, scores, ranked, labels, colours)
            apply_layout(fig, f"{dataset}: F1 per class, most to least frequent in training", height=430)
            blocks.append(
                Figure(
                    fig,
                    caption=f"{dataset}: mean F1 over seeds per class ({num_classes} classes; shaded: head, medium, "
                    "tail terciles of classes by training count, as acc_head/medium/tail)",
                )
            )
            rows = []
            for cid in ranked:
                row: dict[str, Any] = {"configuration": labels.get(cid, cid), "seeds": str(len(scores[cid]))}
                for name in BUCKETS:
                    mask = bucket == name
                    per_seed = [float(np.nanmean(s[mask])) for s in scores[cid] if np.isfinite(s[mask]).any()]
                    mean, ci = t_interval(per_seed)
                    row[f"{name} macro-F1 (%)"] = fmt_num(mean, 2, 100) + (
                        "" if np.isnan(ci) else f" ± {fmt_num(ci, 2, 100)}"
                    )
                    row[f"_{name}"] = mean
                rows.append(row)
            frame = pd.DataFrame(rows)
            bold = pd.DataFrame(False, index=frame.index, columns=frame.columns)
            for name in BUCKETS:
                values = frame[f"_{name}"].to_numpy(dtype=float)
                if np.isfinite(values).any():
                    bold.loc[np.flatnonzero(values == np.nanmax(values)), f"{name} macro-F1 (%)"] = True
            hidden = [f"_{b}" for b in BUCKETS]
            counts = {b: int((bucket == b).sum()) for b in BUCKETS}
            blocks.append(
                Table(
                    frame.drop(columns=hidden),
                    bold=bold.drop(columns=hidden),
                    caption=f"{dataset}: macro-F1 within each bucket ({counts['head']} head, {counts['medium']} medium, "
                    f"{counts['tail']} tail classes), per seed then mean ± 95% CI; bold: best",
                )
            )
        if not blocks:
            return Section.absent(self, "no test predictions for the classes recorded in classes.parquet")
        return Section.of(self, *blocks)


def _figure(
    table: pd.DataFrame,
    order: np.ndarray,
    bucket: np.ndarray,
    scores: dict[str, list[np.ndarray]],
    ranked: list[str],
    labels: dict[str, str],
    colours: dict[str, str],
) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    names = table["class_name"].astype(str).to_numpy()[order]
    counts = table["train_count"].to_numpy()[order]
    ordered_bucket = bucket[order]
    for name in BUCKETS:
        where = np.flatnonzero(ordered_bucket == name)
        if len(where):
            fig.add_vrect(
                x0=where[0] - 0.5, x1=where[-1] + 0.5, fillcolor=SHADES[name], line_width=0, layer="below"
            )
            fig.add_annotation(x=(where[0] + where[-1]) / 2, y=1.04, yref="paper", text=name, showarrow=False)
    for cid in ranked:
        mean = np.nanmean(np.array(scores[cid]), axis=0)[order] * 100
        fig.add_scatter(
            x=list(range(len(order))),
            y=list(mean),
            mode="lines+markers",
            marker={"size": 5},
            line={"color": colours.get(cid), "width": 1.5},
            name=labels.get(cid, cid),
            text=[f"{n} (train {c})" for n, c in zip(names, counts, strict=True)],
            hovertemplate="%{text}<br>F1 %{y:.1f}%<extra></extra>",
        )
    step = max(1, len(order) // 30)
    fig.update_xaxes(
        title_text="class (by training frequency)",
        tickvals=list(range(0, len(order), step)),
        ticktext=[str(n) for n in names[::step]],  # whole names: the margin grows to fit them
        tickangle=-90,  # straight down: a long name never reaches past the plot's sides
        automargin=True,
    )
    fig.update_yaxes(title_text="F1 (%)")
    return fig
