"""Confusion matrix of the most-confused classes for the best configuration.

The best configuration of each dataset (rank 1 of the leaderboard) has its test predictions pooled
over its ok seeds (``predictions/<run>.npy``); ``M[t, p]`` counts test rows of true class t predicted
as p. The classes shown are those of the largest off-diagonal cells, taken in order until
:data:`MAX_CLASSES` classes are in (all classes when there are at most that many); cells are shares of
the true class's rows (row-normalised, %) with the counts on hover. A table lists the top confusions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.report.base import Figure, Reporter, ResultsView, Section, Table, register_reporter
from fusionzoo.report.common import apply_layout, per_config

__all__ = ["MAX_CLASSES", "MostConfused", "most_confused"]

MAX_CLASSES = 12
TOP_PAIRS = 10


def most_confused(matrix: np.ndarray, limit: int = MAX_CLASSES) -> list[int]:
    """Class ids of the largest off-diagonal cells of ``matrix``, in order, at most ``limit`` of them
    (every class when there are at most ``limit``); ties broken by class id."""
    size = len(matrix)
    if size <= limit:
        return list(range(size))
    off = matrix.astype(float).copy()
    np.fill_diagonal(off, -1)
    chosen: list[int] = []
    for flat in np.lexsort((np.arange(off.size), -off.reshape(-1))):
        if off.reshape(-1)[flat] <= 0:
            break
        for cls in divmod(int(flat), size):
            if cls not in chosen and len(chosen) < limit:
                chosen.append(cls)
        if len(chosen) >= limit:
            break
    return chosen or list(range(limit))


@register_reporter
class MostConfused(Reporter):
    """Row-normalised confusion sub-matrix of the best configuration (module docstring)."""

    name = "confusion"
    title = "Most-confused classes (best configuration)"
    description = (
        "confusion matrix of the most-confused classes for the best configuration, pooled over seeds"
    )
    formats = ("section",)
    order = 60

    def render(self, view: ResultsView, fmt: str = "section", **_: Any) -> Section:
        import plotly.graph_objects as go
        from sklearn.metrics import confusion_matrix

        summary, labels, _ = per_config(view)
        classes = view.table("classes")
        blocks: list[Any] = []
        for dataset, part in summary[summary["n"] > 0].groupby("dataset", sort=False):
            best = str(part["config_id"].iloc[0])
            runs = view.ok[view.ok["config_id"].astype(str) == best]
            found = [view.store.predictions(str(r)) for r in runs["run_id"]]
            found = [f for f in found if f is not None and len(f[1])]
            if not found:
                continue
            predictions = np.concatenate([f[0] for f in found])
            truth = np.concatenate([f[1] for f in found])
            names = self._names(classes, runs, int(max(truth.max(), predictions.max())) + 1)
            matrix = confusion_matrix(truth, predictions, labels=np.arange(len(names)))
            chosen = most_confused(matrix)
            sub = matrix[np.ix_(chosen, chosen)]
            rows = matrix[chosen].sum(axis=1, keepdims=True)
            share = np.where(rows > 0, sub / np.maximum(rows, 1) * 100, np.nan)
            shown = [names[c] for c in chosen]
            text = [[f"{v:.0f}" if v >= 0.5 else "" for v in row] for row in np.nan_to_num(share)]
            fig = go.Figure(
                go.Heatmap(
                    z=share,
                    x=shown,
                    y=shown,
                    text=text,
                    texttemplate="%{text}",
                    customdata=sub,
                    colorscale="Blues",
                    zmin=0,
                    zmax=100,
                    colorbar={"title": {"text": "% of true"}},
                    hovertemplate="true %{y} → predicted %{x}: %{customdata} rows (%{z:.1f}%)<extra></extra>",
                    meta={"cmap": "Blues"},
                )
            )
            fig.update_xaxes(title_text="predicted")
            fig.update_yaxes(title_text="true", autorange="reversed")
            apply_layout(
                fig, f"{dataset}: {labels[best]}, {len(found)} seed(s) pooled", height=200 + 32 * len(chosen)
            )
            blocks.append(
                Figure(
                    fig,
                    caption=f"{dataset}: row-normalised confusion (%) of the {len(chosen)} most-confused of "
                    f"{len(names)} classes for {labels[best]} (the best configuration)",
                )
            )
            off = matrix.copy()
            np.fill_diagonal(off, 0)
            flat = np.argsort(-off.reshape(-1), kind="stable")[:TOP_PAIRS]
            pairs = [divmod(int(f), len(names)) for f in flat if off.reshape(-1)[f] > 0]
            if pairs:
                totals = matrix.sum(axis=1)
                blocks.append(
                    Table(
                        pd.DataFrame(
                            {
                                "true class": [names[t] for t, _ in pairs],
                                "predicted as": [names[p] for _, p in pairs],
                                "rows": [str(int(matrix[t, p])) for t, p in pairs],
                                "% of true class": [
                                    f"{matrix[t, p] / max(totals[t], 1) * 100:.1f}" for t, p in pairs
                                ],
                            }
                        ),
                        caption=f"{dataset}: the {len(pairs)} largest confusions (pooled test rows of all seeds)",
                    )
                )
        if not blocks:
            return Section.absent(self, "no test predictions of the best configuration (predictions/*.npy)")
        return Section.of(self, *blocks)

    @staticmethod
    def _names(classes: pd.DataFrame | None, runs: pd.DataFrame, size: int) -> list[str]:
        if classes is not None and len(classes):
            table = classes[classes["data_fingerprint"].isin(set(runs["data_fingerprint"]))].sort_values(
                "class_id"
            )
            if len(table) >= size:
                return table["class_name"].astype(str).tolist()
        return [f"class {i}" for i in range(size)]
