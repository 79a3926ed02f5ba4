"""The cross-dataset summary of a suite: one row per method over every dataset of the runs.

The statistics are :func:`fusionzoo.results.cross_summary.cross_dataset_summary`'s (rliable's IQM and
mean with stratified-bootstrap CIs, P(A > B), autorank's average ranks, Friedman test and critical
difference, baycomp's practical-equivalence verdicts); this reporter picks the runs and prints them:

- the runs at each dataset's full training size (:func:`~fusionzoo.report.base.full_size`), status
  ``ok`` counted and the others excluded (``failed`` column), methods = fusion (+ head when heads
  vary), the linear probe left out where it did not run on every dataset;
- scores: the leaderboard metric; for accuracy normalised by the chance level of each dataset (the
  majority-class rate of its test split, from ``classes.parquet``), for other metrics by the
  ``[suite] normalise`` given (``none`` unless set);
- ``baseline``: ``[suite] baseline``, else the simplest fusion of the runs (``late_fusion``, else
  ``concat_mlp``); ``rope``: ``[suite] rope`` (0.01 = 1 point).

Formats: ``terminal`` (a rich table and the sentences), ``section`` (the HTML report: the table, the
critical-difference diagram, P(A > B) between every pair, the sentences), ``md``, ``latex`` and
``csv`` (the table; ``fusionzoo report --format``). Nothing is shown for fewer than two datasets.
"""

from __future__ import annotations

import io
import math
from typing import Any

import pandas as pd

from fusionzoo.report.base import Figure, Reporter, ResultsView, Section, Table, Text, register_reporter

__all__ = ["SIMPLE_BASELINES", "SuiteSummary", "suite_summary"]

SIMPLE_BASELINES = ("late_fusion", "concat_mlp")  # the default baseline: the first of these that ran
VERDICT = {"equivalent": "≈", "better": "better", "worse": "worse", "inconclusive": "?"}


def _settings(suite: Any) -> dict[str, Any]:
    return {
        "baseline": getattr(suite, "baseline", None),
        "rope": float(getattr(suite, "rope", 0.01)),
        "normalise": getattr(suite, "normalise", None),
    }


def _chance(view: ResultsView, runs: pd.DataFrame) -> dict[str, float] | None:
    from fusionzoo.results.cross_dataset import chance_accuracy

    classes = view.table("classes")
    if classes is None or not len(classes):
        return None
    levels = chance_accuracy(classes).set_index("data_fingerprint")["majority"]
    pairs = runs[["dataset", "data_fingerprint"]].drop_duplicates()
    if not pairs["data_fingerprint"].isin(levels.index).all():
        return None
    return {str(d): float(levels[f]) for d, f in pairs.itertuples(index=False)}


def suite_summary(view: ResultsView, suite: Any = None, *, reps: int | None = None) -> Any:
    """The :class:`~fusionzoo.results.cross_summary.CrossDatasetSummary` of ``view`` (module docstring),
    or ``None`` with fewer than two datasets with finished runs."""
    from fusionzoo.results.cross_dataset import scores_from_results
    from fusionzoo.results.cross_estimates import REPS
    from fusionzoo.results.cross_summary import cross_dataset_summary

    runs = view.runs
    if not len(runs) or view.metric not in runs.columns or runs["dataset"].nunique() < 2:
        return None
    settings = _settings(suite)
    one_head = runs.groupby(["dataset", "fusion"])["head"].nunique().max() <= 1
    frame = scores_from_results(runs, view.metric, method=("fusion",) if one_head else ("fusion", "head"))
    methods = set(frame["method"])
    baseline = settings["baseline"]
    if baseline is None:
        baseline = next((b for b in SIMPLE_BASELINES if b in methods), None)
    accuracy = view.metric.endswith("_accuracy")
    normalise = settings["normalise"] or ("chance" if accuracy else "none")
    chance = _chance(view, runs) if normalise == "chance" else None
    if normalise == "chance" and (chance is None or not accuracy):
        normalise = "none"
    if view.direction() == "min":
        frame = frame.assign(score=-frame["score"])
    summary = cross_dataset_summary(
        frame,
        baseline=baseline if baseline in methods else None,
        normalise=normalise,
        chance=chance,
        rope=settings["rope"],
        reps=reps or REPS,
    )
    return summary


def _ci(value: float, low: float, high: float) -> str:
    if not math.isfinite(value):
        return "-"
    text = f"{value:.3f}"
    return text + (f" [{low:.3f}, {high:.3f}]" if math.isfinite(low) and math.isfinite(high) else "")


def _verdict(row: pd.Series, role: str) -> str:
    verdict = row[f"verdict_{role}"]
    if not verdict:
        return "-"
    return f"{VERDICT.get(verdict, verdict)} P(eq)={row[f'p_equiv_{role}']:.2f}"


def display_table(summary: Any) -> pd.DataFrame:
    """The summary as text cells, one row per method (best IQM first)."""
    table = summary.table
    baseline = summary.baseline or "baseline"
    return pd.DataFrame(
        {
            "method": table["method"],
            "datasets": table["datasets"].astype(int),
            "runs": table["runs"].astype(int),
            "failed": table["failed"].astype(int),
            "IQM [95% CI]": [_ci(r.iqm, r.iqm_low, r.iqm_high) for r in table.itertuples()],
            "mean [95% CI]": [_ci(r.mean, r.mean_low, r.mean_high) for r in table.itertuples()],
            "avg rank": [f"{r:.2f}" for r in table["mean_rank"]],
            f"P(> {baseline})": [
                _ci(r.p_vs_baseline, r.p_vs_baseline_low, r.p_vs_baseline_high) for r in table.itertuples()
            ],
            f"vs best ({summary.best})": [_verdict(r, "best") for _, r in table.iterrows()],
            f"vs {baseline}": [_verdict(r, "baseline") for _, r in table.iterrows()],
        }
    )


def _title(view: ResultsView, summary: Any) -> str:
    return (
        f"across {len(summary.runs.datasets)} datasets · {view.metric}, normalised "
        f"({summary.runs.normalisation}) · higher is better"
    )


@register_reporter
class SuiteSummary(Reporter):
    name = "suite"
    title = "Across datasets"
    description = (
        "cross-dataset summary of a suite: IQM/mean with CIs, P(A > B), average ranks and the "
        "critical-difference diagram, practical-equivalence verdicts"
    )
    formats = ("terminal", "section", "md", "latex", "csv")
    order = 12

    def render(
        self, view: ResultsView, fmt: str = "section", console: Any = None, suite: Any = None, **_: Any
    ) -> Any:
        if fmt not in self.formats:
            raise ValueError(f"reporter {self.name} renders {', '.join(self.formats)}, not '{fmt}'")
        summary = suite_summary(view, suite)
        if fmt == "section":
            return self._section(view, summary)
        if summary is None:
            return None if fmt == "terminal" else ""
        frame = display_table(summary)
        if fmt == "terminal":
            return self._terminal(console, view, summary, frame)
        if fmt == "csv":
            return summary.table.to_csv(index=False)
        notes = "\n".join(f"- {line}" for line in summary.lines())
        if fmt == "md":
            return f"**{_title(view, summary)}**\n\n{frame.to_markdown(index=False)}\n\n{notes}\n"
        from fusionzoo.report.leaderboard_table import _latex

        latex = frame.map(_latex)
        latex.columns = [_latex(c) for c in latex.columns]
        return latex.style.hide(axis="index").to_latex(
            caption=_latex(f"{_title(view, summary)}. {summary.coverage}"),
            label="tab:fusionzoo-suite",
            hrules=True,
            position_float="centering",
        )

    @staticmethod
    def _terminal(console: Any, view: ResultsView, summary: Any, frame: pd.DataFrame) -> Any:
        from rich.markup import escape
        from rich.table import Table as RichTable

        table = RichTable(title=_title(view, summary), title_justify="left")
        for column in frame.columns:
            table.add_column(escape(str(column)), overflow="fold")
        for row in frame.itertuples(index=False):
            table.add_row(*(escape(str(v)) for v in row))
        console.print(table)
        for line in summary.lines():
            console.print(f"[dim]{escape(line)}[/dim]")
        return summary

    def _section(self, view: ResultsView, summary: Any) -> Section:
        if summary is None:
            return Section.absent(self, "fewer than two datasets in the runs (bench --datasets 'A+B+…')")
        blocks: list[Any] = [
            Table(display_table(summary), caption=f"{_title(view, summary)}. {summary.coverage}.")
        ]
        if summary.ranks is not None:
            from fusionzoo.results.cross_ranks import cd_figure

            figure = cd_figure(summary.ranks)
            if figure is not None:
                buffer = io.BytesIO()
                figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
                blocks.append(
                    Figure(
                        png=buffer.getvalue(),
                        caption=f"Critical-difference diagram: average ranks over the datasets (1 = best); "
                        f"methods joined by a bar are not significantly different (Nemenyi, CD = "
                        f"{summary.ranks.cd:.2f}). {summary.ranks.note}.",
                    )
                )
        matrix = summary.improvement.map(lambda p: "" if not math.isfinite(p) else f"{p:.2f}")
        blocks.append(
            Table(
                matrix.reset_index(names="P(row > column)"),
                caption="Probability of improvement P(row > column) (rliable): the chance that a random run "
                "of the row's method beats one of the column's on a random dataset",
            )
        )
        blocks.extend(Text(line) for line in summary.lines())
        return Section.of(self, *blocks)
