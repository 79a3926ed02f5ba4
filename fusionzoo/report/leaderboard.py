"""The leaderboard: mean ± 95% CI over seeds per configuration, significance against the best, cost."""

from __future__ import annotations

import fnmatch
import math
from typing import Any

import pandas as pd

from fusionzoo.config import UNIMODAL
from fusionzoo.report.base import Reporter, ResultsView, register_reporter
from fusionzoo.report.common import display_spec, fmt_num, metric_label
from fusionzoo.report.fit import Column, print_fitted

__all__ = ["Leaderboard", "fmt_mean_ci", "fmt_p", "fmt_params", "legend", "robustness_note", "versus_best"]


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
    return fmt_num(mean, 2, scale) + (f" ± {fmt_num(ci, 2, scale)}" if not math.isnan(ci) else " (1 seed)")


def legend(tested: int) -> str:
    """What ``*`` and ``↑`` in "vs best" mean, naming the Holm family (``tested`` comparisons)."""
    return (
        "* worse than the best at α = 0.05 (two-sided test, sign checked; Holm over the "
        f"{tested} comparison{'s' if tested != 1 else ''} with the best, while the report's pairwise "
        "section adjusts over all pairs; paired t over shared seeds, McNemar when one seed is shared). "
        "↑ better than the best but ranked below it: not all its seeds finished. "
        "Dim rows: baselines (unimodal fusions, the linear probe on pooled frozen features)."
    )


def robustness_note(metric: str, reference: str) -> str:
    """What the R/ER columns are: of which metric, against which reference."""
    against = (
        f"ER against the clean-trained {reference} runs of the same data and settings"
        if reference
        else "ER not computed (no reference run with these settings)"
    )
    return f"R / ER: relative / effective robustness of test {metric_label(metric)} ({against})"


def versus_best(row: pd.Series, with_test: bool = False) -> str:
    """The "vs best" cell of a summary row: ``best``, the Holm-adjusted p with ``*`` (significantly
    worse) or ``↑`` (significantly better, ranked below the best because it is incomplete), ``-``."""
    if row["is_best"]:
        return "best"
    if not row["test"]:
        return "-"
    mark = " *" if row["significant"] else " ↑" if row.get("better_significant", False) else ""
    return fmt_p(row["p_adjusted"]) + (f" ({row['test']})" if with_test else "") + mark


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
    for column in ("train_protocol", "distill_teacher"):
        if column in frame.columns:
            out[column] = frame.groupby("config_id")[column].first()
    return out


def _extra_title(column: str) -> str:
    if column.startswith("rel_robust_"):
        return f"rel. robust. ({column.removeprefix('rel_robust_')})"
    return EXTRA_TITLES.get(column, column)


def _fmt_value(mean: float, ci: float) -> str:
    """A non-percentage metric (GFLOPs, ms, samples/s, effective robustness) with 4 significant digits."""
    if math.isnan(mean):
        return "-"
    return _sig(mean, 4) + (f" ± {_sig(ci, 2)}" if not math.isnan(ci) and ci > 0 else "")


def _sig(value: float, digits: int) -> str:
    """``digits`` significant digits; a magnitude below 1e-12 (rounding noise of a difference that is 0,
    e.g. the reference's own effective robustness) prints as 0, never "-0" or "-1e-17"."""
    return "0" if abs(value) < 1e-12 else f"{value:.{digits}g}"


def _fmt_extra(column: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if column.startswith("rel_robust_"):
        return fmt_num(value, 2, 100)
    if column == "gflops_forward":
        return _sig(float(value), 4)
    return fmt_num(value, 3)


# priorities of the terminal leaderboard's columns (lower = kept longer when the terminal is narrow)
PRIORITY = {"fusion": 0, "metric": 1, "vs best": 2, "#": 3, "head": 4, "seeds": 5, "macro F1": 6}
EXTRA_PRIORITY, COST_PRIORITY = 20, 40  # robustness columns, then GFLOPs/latency, then params, train s


def _columns(
    part: pd.DataFrame, f1: pd.DataFrame | None, metric: str, extra: pd.DataFrame | None, scale: float
) -> list[Column]:
    """The terminal leaderboard's columns of one dataset's summary rows (see :mod:`.fit`)."""
    f1_of = f1.set_index("config_id") if f1 is not None else None
    values = [extra.loc[c] if extra is not None and c in extra.index else None for c in part["config_id"]]
    fusions = []
    fusion_of = dict(zip(part["config_id"].astype(str), part["fusion"], strict=True))
    for (_, row), value in zip(part.iterrows(), values, strict=True):
        protocol = value.get("train_protocol") if value is not None else None
        fusion = display_spec(row["fusion"])
        fusion = f"{fusion} ⟨train {protocol}⟩" if protocol else fusion
        teacher = str(value.get("distill_teacher") or "") if value is not None else ""
        if teacher:  # a distilled student: its teacher's fusion (config_id:seeds=…:fusion)
            parts = teacher.split(":", 2)
            name = fusion_of.get(parts[0]) or (parts[2] if len(parts) > 2 else parts[0][:10])
            fusion += f" ⟨student of {display_spec(name)}⟩"
        fusions.append(fusion)
    columns = [
        Column("#", ["-" if pd.isna(r) else str(r) for r in part["rank"]], PRIORITY["#"]),
        Column("fusion", fusions, PRIORITY["fusion"], numeric=False, justify="left"),
        Column(
            "head", [display_spec(h) for h in part["head"]], PRIORITY["head"], numeric=False, justify="left"
        ),
        Column(
            "seeds",
            [
                f"{r['n']}"
                + (f" ({r['failed']} failed)" if r["failed"] else "")
                + (f" ({r['diverged']} diverged)" if r["diverged"] else "")
                for _, r in part.iterrows()
            ],
            PRIORITY["seeds"],
        ),
        Column(
            metric.removeprefix("test_"),
            [
                fmt_mean_ci(m, c, scale) if scale == 100.0 else _fmt_value(m, c)
                for m, c in zip(part["mean"], part["ci"], strict=True)
            ],
            PRIORITY["metric"],
        ),
    ]
    if f1_of is not None:
        columns.append(
            Column(
                "macro F1",
                [
                    fmt_mean_ci(f1_of.loc[c, "mean"], f1_of.loc[c, "ci"]) if c in f1_of.index else "-"
                    for c in part["config_id"]
                ],
                PRIORITY["macro F1"],
            )
        )
    columns.append(Column("vs best", [versus_best(r) for _, r in part.iterrows()], PRIORITY["vs best"]))
    columns.append(Column("params", [fmt_params(n) for n in part["params"]], COST_PRIORITY + 10))
    columns.append(
        Column(
            "train s",
            ["-" if math.isnan(t) else f"{t:.1f}" for t in part["train_time"]],
            COST_PRIORITY + 11,
        )
    )
    shown = [
        c
        for c in (extra.columns if extra is not None else [])
        if c not in ("train_protocol", "distill_teacher")
    ]
    for i, column in enumerate(shown):
        cost = column in EXTRA_TITLES
        columns.append(
            Column(
                _extra_title(column),
                [_fmt_extra(column, v[column] if v is not None else float("nan")) for v in values],
                (COST_PRIORITY if cost else EXTRA_PRIORITY) + i,
            )
        )
    return columns


@register_reporter
class Leaderboard(Reporter):
    """One table per dataset, ranked by the view's metric (a ``test_``/``val_`` column): mean ± 95%
    t-interval over seeds, macro-F1, the test against the best (paired t over shared seeds, McNemar
    when one seed is shared; Holm-adjusted, ``*`` = significantly worse), seeds with failed/diverged
    counts, parameters and train time. Returns the summary table (``fusionzoo.results.stats.summarize``).

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
        from rich.markup import escape

        from fusionzoo.results.stats import BOARD, summarize

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
        versions = summary.groupby("dataset")["data_fingerprint"].nunique()
        for (dataset, fingerprint), part in summary.groupby(list(BOARD), sort=False, dropna=False):
            version = str(fingerprint)[:12] if versions.get(dataset, 1) > 1 else ""
            self._table(console, dataset, part, f1, metric, extra, summary.attrs["scale"], view.dir, version)
        for line in view.versions_note():
            console.print(f"[yellow]note[/yellow]: {escape(line)}")
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
        runs_dir: Any = None,
        version: str = "",
    ) -> None:
        from fusionzoo.metrics.base import column_direction

        unit = " (%)" if scale == 100.0 else ""
        where = f"{dataset} (data version {version})" if version else dataset
        title = f"leaderboard · {where} · {metric}{unit} mean ± 95% CI over seeds"
        if column_direction(metric) == "min":
            title += " · lower is better"
        hint = (
            f"the HTML report (fusionzoo report {runs_dir}) or --format md shows them, or a wider terminal"
            if runs_dir is not None
            else "a wider terminal shows them"
        )
        columns = _columns(part, f1, metric, extra, scale)
        styles = ["dim" if _is_baseline(f) else None for f in part["fusion"]]
        print_fitted(console, columns, title, styles, hint)
        tested = int(part["test"].astype(bool).sum())
        console.print(f"[dim]{legend(tested)}[/dim]")
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
