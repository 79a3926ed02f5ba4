"""The leaderboard: mean ± 95% CI over seeds per configuration, significance against the best, cost."""

from __future__ import annotations

import fnmatch
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


EXTRA_TITLES = {"gflops_forward": "GFLOPs", "latency_p50_ms": "latency ms"}


def with_evaluation_columns(store: Any, frame: pd.DataFrame, metric: str = "test_accuracy") -> pd.DataFrame:
    """``frame`` with the per-run evaluation columns (robustness summaries of the robustness metric of
    ``metric``, efficiency), if any; ``attrs["robustness_note"]`` says what R/ER are computed on."""
    try:
        from fusionzoo.evaluation.views import run_extras

        extras = run_extras(store, frame, metric=metric)
    except (AttributeError, OSError, ValueError, KeyError):  # a store without evaluation tables
        return frame
    out = pd.concat([frame, extras.drop(columns=[c for c in extras.columns if c in frame.columns])], axis=1)
    if "robustness_metric" in extras.attrs:
        from fusionzoo.report.leaderboard_table import robustness_note

        note = robustness_note(extras.attrs["robustness_metric"], extras.attrs["reference"])
        out.attrs["robustness_note"] = note.replace("R / ER:", "rel. robust. / eff_robust_*:", 1)
    return out


def _direction(metric: str) -> tuple[bool, bool]:
    """(rank lowest first, is a prediction metric column) of ``metric``."""
    from fusionzoo.metrics.base import column_direction, metric_columns

    direction = column_direction(metric)
    bare = metric.removeprefix("test_").removeprefix("val_")
    predictions = any(fnmatch.fnmatchcase(bare, p) for p in metric_columns("predictions"))
    return direction == "min", predictions


def _extra_columns(frame: pd.DataFrame) -> pd.DataFrame | None:
    """Per configuration: the train protocol, mean relative robustness per protocol, GFLOPs, latency."""
    wanted = [c for c in frame.columns if c.startswith("rel_robust_")]
    wanted += [c for c in ("gflops_forward", "latency_p50_ms") if c in frame.columns]
    if not wanted and "train_protocol" not in frame.columns:
        return None
    ok = frame[frame["status"] == "ok"]
    out = ok.groupby("config_id")[wanted].mean() if wanted else pd.DataFrame(index=ok["config_id"].unique())
    if "train_protocol" in frame.columns:
        out["train_protocol"] = frame.groupby("config_id")["train_protocol"].first()
    out = out.rename(
        columns={
            c: f"rel. robust. ({c.removeprefix('rel_robust_')})"
            for c in out.columns
            if c.startswith("rel_robust_")
        }
    )
    EXTRA_TITLES.update({c: c for c in out.columns if c.startswith("rel. robust.")})
    return out


def _fmt_value(mean: float, ci: float) -> str:
    """A non-percentage metric (GFLOPs, ms, samples/s, effective robustness) with 4 significant digits."""
    if math.isnan(mean):
        return "-"
    return f"{mean:.4g}" + (f" ± {ci:.2g}" if not math.isnan(ci) and ci > 0 else "")


def _fmt_extra(column: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if column.startswith("rel. robust."):
        return f"{float(value) * 100:.2f}"
    if column == "gflops_forward":
        return f"{float(value):.4g}"
    return f"{float(value):.3f}"


@register_reporter
class Leaderboard(Reporter):
    """One table per dataset, ranked by the view's metric (a ``test_``/``val_`` column): mean ± 95%
    t-interval over seeds, macro-F1, the test against the best (paired t over shared seeds, McNemar
    when one seed is shared; Holm-adjusted, ``*`` = significantly worse), seeds with failed/diverged
    counts, parameters and train time. Returns the summary table (``fusionzoo.bench.stats.summarize``).

    When the runs directory has evaluation tables (``fusionzoo eval``), the per-run columns of
    :func:`fusionzoo.evaluation.views.run_extras` join the runs: the table gains ``rel. robust. (P)``
    per protocol P, ``GFLOPs`` and ``latency ms``, and the metric may be any of those columns
    (``rel_robust_missing_image``, ``gflops_forward``, ``latency_p50_ms``, ...; a ``min`` metric ranks
    lowest first). Runs trained under a train-time protocol show it next to the fusion.
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
        frame = with_evaluation_columns(view.store, frame, view.metric)
        bare = metric.removeprefix("test_").removeprefix("val_")
        metric = bare if metric not in frame.columns and bare in frame.columns else metric
        if metric not in frame.columns:
            available = ", ".join(sorted(c for c in frame.columns if c.startswith("test_")))
            console.print(f"[red]metric '{metric}' is not in the results; available: {available}[/red]")
            metric = "test_accuracy" if "test_accuracy" in frame.columns else metric
            if metric not in frame.columns:
                return None
        minimise, is_prediction = _direction(metric)
        extra = _extra_columns(frame)
        summary = summarize(
            frame,
            metric,
            predictions=view.store.predictions if is_prediction else None,
            direction="min" if minimise else "max",
        )
        bare = metric.removeprefix("test_").removeprefix("val_")  # the metric may have been resolved above
        summary.attrs["scale"] = 100.0 if is_prediction or bare.startswith("rel_robust_") else 1.0
        f1 = (
            summarize(frame, "test_macro_f1")
            if "test_macro_f1" in frame.columns and metric != "test_macro_f1"
            else None
        )
        for dataset, part in summary.groupby("dataset", sort=False):
            self._table(console, dataset, part, f1, metric, extra, summary.attrs["scale"])
        if frame.attrs.get("robustness_note") and any(c.startswith(("rel_", "eff_")) for c in frame.columns):
            console.print(f"[dim]{frame.attrs['robustness_note']}.[/dim]")
        return summary

    @staticmethod
    def _table(
        console: Any,
        dataset: str,
        part: pd.DataFrame,
        f1: pd.DataFrame | None,
        metric: str,
        extra: pd.DataFrame | None = None,
        scale: float = 100.0,
    ) -> None:
        from rich.table import Table

        from fusionzoo.metrics.base import column_direction

        unit = " (%)" if scale == 100.0 else ""
        title = f"leaderboard · {dataset} · {metric}{unit} mean ± 95% CI over seeds"
        if column_direction(metric) == "min":
            title += " · lower is better"
        table = Table(title=title, title_justify="left")
        columns = ("#", "fusion", "head", "seeds", metric.removeprefix("test_"), "macro F1", "vs best")
        shown = [c for c in (extra.columns if extra is not None else []) if c != "train_protocol"]
        for col in (*columns, "params", "train s", *(EXTRA_TITLES.get(c, c) for c in shown)):
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
            values = (
                extra.loc[row["config_id"]] if extra is not None and row["config_id"] in extra.index else None
            )
            fusion = row["fusion"]
            if values is not None and values.get("train_protocol"):
                fusion = f"{fusion} ⟨train {values['train_protocol']}⟩"
            table.add_row(
                str(row["rank"]),
                fusion,
                row["head"],
                seeds,
                fmt_mean_ci(row["mean"], row["ci"], scale)
                if scale == 100.0
                else _fmt_value(row["mean"], row["ci"]),
                f1_text,
                versus,
                fmt_params(row["params"]),
                "-" if math.isnan(row["train_time"]) else f"{row['train_time']:.1f}",
                *(_fmt_extra(c, values[c] if values is not None else float("nan")) for c in shown),
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
