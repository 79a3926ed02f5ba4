"""Pairwise significance matrix: every pair of configurations, Holm-adjusted, with the test used.

``fusionzoo.results.stats.pairwise`` runs, for each pair, the tests of the leaderboard (paired t-test over
the shared seeds; McNemar on the pooled test predictions when one seed is shared) and Holm-adjusts the
deciding p-values over all pairs of the dataset. Cell (row a, column b) is coloured by the mean
difference a − b in points and shows the adjusted p, ``*`` when it is below 0.05 (the two differ;
two-sided). The marks are exactly the ``significant`` pairs of ``pairwise``.

Two families, both shown and named: this section adjusts over **every pair** (k·(k−1)/2 tests), the
leaderboard's "vs best" column over the **comparisons with the best** (k−1 tests), so a pair with the
best can be marked there and not here (a smaller family is less conservative). The table of pairs
gives both adjusted p-values side by side for the pairs with the best.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.report.base import Figure, Reporter, ResultsView, Section, Table, register_reporter
from fusionzoo.report.common import apply_layout, fmt_num, metric_label, per_config

__all__ = ["SignificanceMatrix", "pair_table", "significance_matrix"]


def significance_matrix(pairs: pd.DataFrame, order: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(difference in points, adjusted p, significant) matrices over ``order`` (config ids) from the
    rows of ``fusionzoo.results.stats.pairwise`` of one dataset; NaN/False on the diagonal and untested pairs."""
    index = {c: i for i, c in enumerate(order)}
    k = len(order)
    diff = np.full((k, k), np.nan)
    p_adj = np.full((k, k), np.nan)
    marked = np.zeros((k, k), dtype=bool)
    for _, row in pairs.iterrows():
        a, b = index.get(str(row["config_id_a"])), index.get(str(row["config_id_b"]))
        if a is None or b is None:
            continue
        delta = (float(row["mean_a"]) - float(row["mean_b"])) * 100
        diff[a, b], diff[b, a] = delta, -delta
        p_adj[a, b] = p_adj[b, a] = float(row["p_adjusted"])
        marked[a, b] = marked[b, a] = bool(row["significant"])
    return diff, p_adj, marked


def _p(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}"


@register_reporter
class SignificanceMatrix(Reporter):
    """The pairwise significance matrix and the list of pairs (module docstring)."""

    name = "significance"
    title = "Pairwise significance"
    description = "Holm-adjusted pairwise tests between all configurations (paired t over seeds / McNemar)"
    formats = ("section",)
    order = 30

    def render(self, view: ResultsView, fmt: str = "section", **_: Any) -> Section:
        import plotly.graph_objects as go

        from fusionzoo.results.stats import pairwise

        summary, labels, _ = per_config(view)
        pairs = pairwise(
            view.runs, view.metric, predictions=view.store.predictions, direction=view.direction()
        )
        if not len(pairs):
            return Section.absent(self, "fewer than two configurations with finished runs")
        blocks: list[Any] = []
        for dataset, part in pairs.groupby("dataset", sort=False):
            board = summary[(summary["dataset"] == dataset) & (summary["n"] > 0)]
            order = list(board["config_id"].astype(str))
            diff, p_adj, marked = significance_matrix(part, order)
            names = [labels[c] for c in order]
            text = [
                [
                    "" if np.isnan(p_adj[i, j]) else f"{_p(p_adj[i, j])}{'*' if marked[i, j] else ''}"
                    for j in range(len(order))
                ]
                for i in range(len(order))
            ]
            bound = float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 1.0
            fig = go.Figure(
                go.Heatmap(
                    z=diff,
                    x=names,
                    y=names,
                    text=text,
                    texttemplate="%{text}",
                    colorscale="RdBu_r",
                    zmid=0,
                    zmin=-bound,
                    zmax=bound,
                    colorbar={"title": {"text": "row − col (pts)"}},
                    hovertemplate="%{y} − %{x}: %{z:.2f} points<br>Holm p = %{text}<extra></extra>",
                    meta={"cmap": "RdBu_r"},
                )
            )
            fig.update_yaxes(autorange="reversed")
            apply_layout(
                fig, f"{dataset}: {metric_label(view.metric)}, row − column", height=120 + 42 * len(order)
            )
            tests = sorted({t for t in part["test"] if t}) or ["none (no shared seeds)"]
            blocks.append(
                Figure(
                    fig,
                    caption=f"{dataset}: colour = mean difference row − column (points); text = Holm-adjusted p over "
                    f"all {len(part)} pairs; * = the two differ at α = 0.05 (two-sided); test used: "
                    f"{', '.join(tests)}",
                )
            )
            table = pair_table(part, board, labels, view.direction())
            blocks.append(
                Table(
                    table,
                    caption=f"{dataset}: every pair, ordered by the leaderboard; first the better mean. Two "
                    f"Holm families: all {len(part)} pairs (this section) and the {max(len(board) - 1, 0)} "
                    "comparisons with the best (the leaderboard's vs best column, given for the pairs with "
                    "the best); the smaller family is less conservative, so the two can disagree",
                )
            )
        return Section.of(self, *blocks)


def pair_table(
    part: pd.DataFrame, board: pd.DataFrame, labels: dict[str, str], direction: str
) -> pd.DataFrame:
    """The pairs of one leaderboard as rows: the better mean first, Δ ≥ 0, the test, p, p adjusted
    over all pairs, and for pairs with the best also the leaderboard's p (adjusted over the
    comparisons with the best) and whether it marks the pair."""
    best = board[board["is_best"]]
    best_id = str(best["config_id"].iloc[0]) if len(best) else None
    vs_best = board.set_index(board["config_id"].astype(str))
    rows = []
    for _, pair in part.iterrows():
        a, b = str(pair["config_id_a"]), str(pair["config_id_b"])
        swap = (pair["mean_b"] > pair["mean_a"]) if direction == "max" else (pair["mean_b"] < pair["mean_a"])
        (first, m1), (second, m2) = (
            ((b, pair["mean_b"]), (a, pair["mean_a"])) if swap else ((a, pair["mean_a"]), (b, pair["mean_b"]))
        )
        other = b if a == best_id else a if b == best_id else None
        leaderboard = vs_best.loc[other] if other is not None and other in vs_best.index else None
        rows.append(
            {
                "better mean": labels.get(first, first),
                "worse mean": labels.get(second, second),
                "Δ (pts)": fmt_num(abs(m1 - m2), 2, 100),
                "shared seeds": str(pair["shared"]),
                "test": pair["test"] or "-",
                "p": fmt_num(pair["p"], 4),
                "p (Holm, all pairs)": fmt_num(pair["p_adjusted"], 4),
                "differs (all pairs)": "yes *" if pair["significant"] else "no",
                "p (Holm, vs best)": "-" if leaderboard is None else fmt_num(leaderboard["p_adjusted"], 4),
                "leaderboard mark": "-"
                if leaderboard is None
                else "* worse"
                if leaderboard["significant"]
                else "↑ better"
                if leaderboard["better_significant"]
                else "none",
            }
        )
    return pd.DataFrame(rows)
