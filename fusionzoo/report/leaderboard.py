"""The leaderboard: mean ± 95% CI over seeds per configuration, significance against the best, cost."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from fusionzoo.config import UNIMODAL
from fusionzoo.report.base import Reporter, ResultsView, register_reporter

__all__ = ["Leaderboard", "fmt_mean_ci", "fmt_p", "fmt_params"]


def fmt_params(n: Any) -> str:
    try:
        n = int(n)
    except (TypeError, ValueError):
        return "-"
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def fmt_p(p: float) -> str:
    if math.isnan(p):
        return "-"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def fmt_mean_ci(mean: float, ci: float, scale: float = 100.0) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean * scale:.2f}" + (f" ± {ci * scale:.2f}" if not math.isnan(ci) else " (1 seed)")


def _is_unimodal(fusion: str) -> bool:
    return fusion.split(":")[0] in UNIMODAL


def _is_probe(fusion: str) -> bool:
    from fusionzoo.baselines.linear_probe import PROBE_NAME

    return fusion.split(":")[0] == PROBE_NAME


def _is_baseline(fusion: str) -> bool:
    return _is_unimodal(fusion) or _is_probe(fusion)


@register_reporter
class Leaderboard(Reporter):
    """One table per dataset, ranked by the view's metric (a ``test_``/``val_`` column): mean ± 95%
    t-interval over seeds, macro-F1, the test against the best (paired t over shared seeds, McNemar
    when one seed is shared; Holm-adjusted, ``*`` = significantly worse), seeds with failed/diverged
    counts, parameters and train time. Returns the summary table (``fusionzoo.bench.stats.summarize``).
    """

    name = "leaderboard"
    description = "terminal leaderboard: mean ± 95% CI over seeds, significance vs the best, cost"
    formats = ("terminal",)

    def render(self, view: ResultsView, fmt: str = "terminal", console: Any = None, **_: Any) -> Any:
        from fusionzoo.bench.stats import summarize

        frame, metric = view.runs, view.metric
        if not len(frame):
            console.print("no results yet")
            return None
        if metric not in frame.columns:
            available = ", ".join(sorted(c for c in frame.columns if c.startswith("test_")))
            console.print(f"[red]metric '{metric}' is not in the results; available: {available}[/red]")
            metric = "test_accuracy" if "test_accuracy" in frame.columns else metric
            if metric not in frame.columns:
                return None
        from fusionzoo.metrics.base import column_direction

        direction = column_direction(metric)
        summary = summarize(frame, metric, predictions=view.store.predictions, direction=direction)
        f1 = (
            summarize(frame, "test_macro_f1")
            if "test_macro_f1" in frame.columns and metric != "test_macro_f1"
            else None
        )
        for dataset, part in summary.groupby("dataset", sort=False):
            self._table(console, dataset, part, f1, metric)
        return summary

    @staticmethod
    def _table(console: Any, dataset: str, part: pd.DataFrame, f1: pd.DataFrame | None, metric: str) -> None:
        from rich.table import Table

        from fusionzoo.metrics.base import column_direction

        title = f"leaderboard · {dataset} · {metric} (%) mean ± 95% CI over seeds"
        if column_direction(metric) == "min":
            title += " · lower is better"
        table = Table(title=title, title_justify="left")
        columns = ("#", "fusion", "head", "seeds", metric.removeprefix("test_"), "macro F1", "vs best")
        for col in (*columns, "params", "train s"):
            table.add_column(col, justify="right" if col not in ("fusion", "head") else "left")
        for _, row in part.iterrows():
            f1_text = "-"
            if f1 is not None:
                match = f1[f1["config_id"] == row["config_id"]]
                if len(match):
                    f1_text = fmt_mean_ci(float(match["mean"].iloc[0]), float(match["ci"].iloc[0]))
            if row["is_best"]:
                versus = "best"
            elif row["test"]:
                mark = " *" if row["significant"] else ""
                versus = f"{fmt_p(row['p_adjusted'])}{mark}"
            else:
                versus = "-"
            seeds = (
                f"{row['n']}"
                + (f" ({row['failed']} failed)" if row["failed"] else "")
                + (f" ({row['diverged']} diverged)" if row["diverged"] else "")
            )
            table.add_row(
                str(row["rank"]),
                row["fusion"],
                row["head"],
                seeds,
                fmt_mean_ci(row["mean"], row["ci"]),
                f1_text,
                versus,
                fmt_params(row["params"]),
                "-" if math.isnan(row["train_time"]) else f"{row['train_time']:.1f}",
                style="dim" if _is_baseline(row["fusion"]) else None,
            )
        console.print(table)
        console.print(
            "[dim]* significantly worse than the best (α = 0.05, Holm-adjusted; paired t-test over "
            "shared seeds, McNemar on pooled test predictions when only one seed is shared). "
            "Dim rows: baselines (unimodal fusions, the linear probe on pooled frozen features).[/dim]"
        )
        unimodal = part["fusion"].map(_is_unimodal)
        probe = part["fusion"].map(_is_probe)
        uni, multi = part[unimodal], part[~unimodal & ~probe]
        if len(uni) and len(multi) and not (uni["mean"].isna().all() or multi["mean"].isna().all()):
            best = max if column_direction(metric) == "max" else min
            gap = (best(multi["mean"].dropna()) - best(uni["mean"].dropna())) * 100
            console.print(
                f"best multimodal − best unimodal: {gap:+.2f} points ({metric.removeprefix('test_')})"
            )
        trained, probes = part[~probe], part[probe]
        if len(trained) and len(probes) and not (trained["mean"].isna().all() or probes["mean"].isna().all()):
            up = column_direction(metric) == "max"
            pick = (lambda s: s.idxmax()) if up else (lambda s: s.idxmin())
            best, floor = trained.loc[pick(trained["mean"])], probes.loc[pick(probes["mean"])]
            gap = (best["mean"] - floor["mean"]) * 100 * (1 if up else -1)  # > 0: the fusion is better
            name = metric.removeprefix("test_")
            if gap < 0:
                console.print(
                    f"[bold yellow]the best trained fusion ({best['fusion']} + {best['head']}) is {-gap:.2f} points "
                    f"{'below' if up else 'worse than'} the linear probe on the same features "
                    f"({floor['fusion']}, {name})[/bold yellow]"
                )
            else:
                console.print(
                    f"best trained fusion − linear probe ({floor['fusion']}): {gap:+.2f} points ({name})"
                )
