"""The leaderboard as a report section and as a paper-ready table (LaTeX, Markdown, CSV).

Per dataset, one row per configuration in leaderboard order (``fusionzoo.results.stats.summarize``, the
statistics of the terminal leaderboard): the metric's mean ± 95% t-interval over seeds, macro-F1, the
test against the best (Holm-adjusted p and which test decided), parameters, GFLOPs and latency
(``efficiency.parquet``), train time, failed/diverged runs, and the relative/effective robustness of
each protocol (``robustness.parquet``, :mod:`fusionzoo.report.robustness`) when present. The best value
of each score column is bold; ``*`` marks configurations significantly worse than the best.

``render(view, "latex")`` is a ``table`` environment per dataset (booktabs rules, ``Styler.to_latex``),
``"md"`` a Markdown table per dataset (``DataFrame.to_markdown``), ``"csv"`` the numbers unformatted.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.report.base import Reporter, ResultsView, Section, Table, Text, register_reporter
from fusionzoo.report.common import (
    display_spec,
    efficiency_by_config,
    fmt_num,
    metric_label,
    per_config,
    protocol_names,
)
from fusionzoo.report.leaderboard import fmt_params, robustness_note, versus_best

__all__ = ["LeaderboardTable", "leaderboard_numbers"]

LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
NOTE = (
    "mean ± 95% t-interval over seeds; bold: best; * significantly worse than the best (α = 0.05, "
    "two-sided test, sign checked, Holm-adjusted over the comparisons with the best; paired t-test over "
    "shared seeds, McNemar on pooled test predictions with one seed)"
)
SECTION_NOTE = (
    " ↑: significantly better than the best but ranked below it (not all its seeds finished). The "
    "Pairwise significance section adjusts over every pair (a larger family) and can differ."
)


LATEX_PREAMBLE = (
    "% fusionzoo leaderboard: needs \\usepackage{booktabs} in the preamble (\\toprule, \\midrule, "
    "\\bottomrule)\n"
)


def _latex(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def leaderboard_numbers(view: ResultsView) -> pd.DataFrame:
    """The numbers of the leaderboard (one row per configuration, leaderboard order, unformatted)."""
    from fusionzoo.report.robustness import robustness_summary

    summary, labels, _ = per_config(view)
    if not len(summary):
        return summary
    out = summary.copy()
    out["configuration"] = out["config_id"].astype(str).map(labels)
    metric = view.metric
    if "test_macro_f1" in view.runs.columns and metric != "test_macro_f1":
        f1 = view.summary("test_macro_f1").set_index("config_id")
        out["macro_f1"] = out["config_id"].map(f1["mean"])
        out["macro_f1_ci"] = out["config_id"].map(f1["ci"])
    efficiency = efficiency_by_config(view)
    for column in ("gflops_forward", "latency_p50_ms"):
        values = (
            efficiency.set_index("config_id")[column]
            if efficiency is not None and column in efficiency
            else {}
        )
        out[column] = out["config_id"].astype(str).map(lambda c, v=values: float(v.get(c, np.nan)))
    robustness = robustness_summary(view)
    if robustness is not None:
        reference = next((r for r in robustness["reference"] if r), "")
        out.attrs["robustness_note"] = robustness_note(str(robustness["metric"].iloc[0]), reference)
        for protocol, part in robustness.groupby("protocol", sort=False):
            for kind in ("relative", "effective"):
                values = dict(zip(part["config_id"], part[kind], strict=True))
                out[f"{kind}:{protocol}"] = (
                    out["config_id"].astype(str).map(lambda c, v=values: v.get(c, np.nan))
                )
    return out


def _note(numbers: pd.DataFrame) -> str:
    extra = numbers.attrs.get("robustness_note") if _score_columns(numbers) else None
    return NOTE + (f"; {extra}" if extra else "")


def _pm(mean: float, ci: float, scale: float = 100.0, digits: int = 2, pm: str = " ± ") -> str:
    if math.isnan(mean):
        return "-"
    return fmt_num(mean, digits, scale) + ("" if math.isnan(ci) else f"{pm}{fmt_num(ci, digits, scale)}")


def _params(n: Any) -> str:
    return fmt_params(n)


def _score_columns(numbers: pd.DataFrame) -> list[str]:
    return [c for c in numbers.columns if c.startswith(("relative:", "effective:"))]


def _display(
    numbers: pd.DataFrame, metric: str, pm: str = " ± ", paper: bool = False, direction: str = "max"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(strings, bold mask) of one dataset's rows (``direction``: how the ranking metric improves)."""
    name = f"{metric_label(metric)} (%)"
    ranks = ["-" if pd.isna(r) else str(r) for r in numbers["rank"]]
    cols: dict[str, list[str]] = {"#": ranks} if not paper else {}
    cols["fusion"] = [display_spec(f) for f in numbers["fusion"]]
    cols["head"] = [display_spec(h) for h in numbers["head"]]
    if not paper:
        cols["seeds"] = [str(n) for n in numbers["n"]]
    cols[name] = [
        _pm(m, c, pm=pm) + (" *" if s else "")
        for m, c, s in zip(numbers["mean"], numbers["ci"], numbers["significant"], strict=True)
    ]
    bold_of: dict[str, Any] = {name: numbers["mean"] if direction == "max" else -numbers["mean"]}
    if "macro_f1" in numbers:
        cols["macro F1 (%)"] = [
            _pm(m, c, pm=pm) for m, c in zip(numbers["macro_f1"], numbers["macro_f1_ci"], strict=True)
        ]
        bold_of["macro F1 (%)"] = numbers["macro_f1"]
    if not paper:
        cols["vs best"] = [versus_best(row, with_test=True) for _, row in numbers.iterrows()]
    cols["params"] = [_params(p) for p in numbers["params"]]
    if numbers["gflops_forward"].notna().any():
        cols["GFLOPs"] = ["-" if math.isnan(v) else f"{v:.3g}" for v in numbers["gflops_forward"]]
    if numbers["latency_p50_ms"].notna().any():
        cols["latency ms"] = [fmt_num(v, 2) for v in numbers["latency_p50_ms"]]
    if not paper:
        cols["train s"] = [fmt_num(v, 1) for v in numbers["train_time"]]
        cols["failed / diverged"] = [
            f"{f} / {d}" for f, d in zip(numbers["failed"], numbers["diverged"], strict=True)
        ]
    columns = _score_columns(numbers)
    names = protocol_names([c.split(":", 1)[1] for c in columns])
    for column in columns:
        kind, protocol = column.split(":", 1)
        title = f"{'R' if kind == 'relative' else 'ER'} {names[protocol]}"
        cols[title] = [fmt_num(v, 3) for v in numbers[column]]
        bold_of[title] = numbers[column]
    frame = pd.DataFrame(cols)
    bold = pd.DataFrame(False, index=frame.index, columns=frame.columns)
    for column, values in bold_of.items():
        values = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        if np.isfinite(values).any():
            bold.loc[np.flatnonzero(values == np.nanmax(values)), column] = True
    return frame, bold


@register_reporter
class LeaderboardTable(Reporter):
    """The leaderboard section of the report, and the paper table (``latex``/``md``/``csv``)."""

    name = "leaderboard_table"
    title = "Leaderboard"
    description = (
        "leaderboard (mean ± 95% CI, significance, cost, robustness); paper tables in LaTeX/Markdown/CSV"
    )
    formats = ("section", "latex", "md", "csv")
    order = 10

    def render(self, view: ResultsView, fmt: str = "section", **_: Any) -> Any:
        numbers = leaderboard_numbers(view)
        if fmt == "section":
            return self._section(view, numbers)
        if fmt not in self.formats:
            raise ValueError(f"reporter {self.name} renders {', '.join(self.formats)}, not '{fmt}'")
        if not len(numbers):  # fusionzoo report refuses this case before rendering
            return {"latex": f"% no runs in {view.dir}\n", "md": f"no runs in {view.dir}\n"}.get(fmt, "")
        if fmt == "csv":
            keep = [c for c in numbers.columns if c not in ("std", "runs", "is_best")]
            return (
                numbers[keep]
                .rename(columns={"mean": f"{view.metric}_mean", "ci": f"{view.metric}_ci95"})
                .to_csv(index=False)
            )
        parts = []
        for dataset, part in numbers.groupby("dataset", sort=False):
            part = part.reset_index(drop=True)
            if fmt == "md":
                frame, bold = _display(part, view.metric, paper=True, direction=view.direction())
                frame = frame.where(~bold, "**" + frame + "**").replace({r" \*$": r" \\*"}, regex=True)
                parts.append(f"**{dataset}** — {_note(numbers)}\n\n{frame.to_markdown(index=False)}\n")
            else:
                parts.append(self._latex(dataset, part, view.metric, view.direction(), _note(numbers)))
        return (LATEX_PREAMBLE if fmt == "latex" else "") + "\n".join(parts)

    @staticmethod
    def _latex(dataset: str, part: pd.DataFrame, metric: str, direction: str, note: str = NOTE) -> str:
        frame, bold = _display(part, metric, pm=" PM ", paper=True, direction=direction)
        frame = frame.map(_latex).replace({" PM ": r" $\\pm$ ", r" \*$": r"$^{*}$"}, regex=True)
        frame.columns = [_latex(c) for c in frame.columns]
        bold.columns = frame.columns
        styler = frame.style.hide(axis="index").apply(
            lambda _: bold.replace({True: "textbf:--rwrap;", False: ""}), axis=None
        )
        caption = (
            _latex(f"{dataset}: {note.replace('±', 'PM')}").replace("PM", r"$\pm$").replace("α", r"$\alpha$")
        )
        return styler.to_latex(
            caption=caption,
            label=f"tab:fusionzoo-{''.join(ch if ch.isalnum() else '-' for ch in dataset)}",
            hrules=True,
            position_float="centering",
            column_format="ll" + "r" * (len(frame.columns) - 2),
        )

    def _section(self, view: ResultsView, numbers: pd.DataFrame) -> Section:
        if not len(numbers):
            return Section.absent(self, "no runs in the results table")
        blocks: list[Any] = []
        for dataset, part in numbers.groupby("dataset", sort=False):
            frame, bold = _display(part.reset_index(drop=True), view.metric, direction=view.direction())
            blocks.append(Table(frame, caption=f"{dataset}: {_note(numbers)}.{SECTION_NOTE}", bold=bold))
        failed = view.runs[view.runs["status"] != "ok"]
        if len(failed):
            blocks.append(
                Table(
                    pd.DataFrame(
                        {
                            "fusion": failed["fusion"],
                            "head": failed["head"],
                            "seed": failed["seed"].astype(str),
                            "status": failed["status"],
                            "error": failed["error"].astype(str).str.slice(0, 160),
                        }
                    ).reset_index(drop=True),
                    caption="runs that did not finish with test metrics (failed: an exception; diverged: a "
                    "non-finite loss); they are left out of every mean",
                )
            )
        blocks.extend(Text(line) for line in view.versions_note())
        blocks.append(
            Text(
                "The same table for a paper: fusionzoo report RUNS_DIR --format latex (or md, csv). Costs "
                "(GFLOPs per sample, latency at batch 1) come from efficiency.parquet; R/ER columns from "
                "robustness.parquet (see Robustness)."
            )
        )
        return Section.of(self, *blocks)
