"""What a finished study produces: a bench preset of the best config, and Optuna's plots.

``--export best.toml`` writes a ``fusionzoo bench --config`` preset (``fusionzoo.config``): the
tuned fusion and head specs in ``[bench]``, the dataset/encoder settings the study trained on, and the
trial's full ``RunConfig`` (minus fusion/head/seed/mode/device, which live in ``[bench]``) in
``[train]``, so a tuned config goes straight into a multi-seed benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from fusionzoo.io import atomic_write
from fusionzoo.tune import TuneError
from fusionzoo.tune.study import best_trials, trial_config

__all__ = ["bench_preset", "export_bench_preset", "save_plots"]

# RunConfig fields that a bench preset sets in [bench] (or per grid cell), not in [train]
_NOT_IN_TRAIN = ("fusion", "head", "seed", "mode", "device")


def _clean(value: Any) -> Any:
    """TOML has no null: drop None values (recursively)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value if v is not None]
    return value


def bench_preset(
    trial: FrozenTrial,
    *,
    bench: dict[str, Any] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    out: str | None = None,
) -> dict[str, Any]:
    """The preset tables for ``trial``: ``{"bench": ..., "train": ..., ["data", "encoders"]}``.

    ``bench``: the study's data settings (``datasets``, ``data_dir``, ``limit``, ``device``, ``data``,
    ``encoders``) so the benchmark trains on the same data as the tuning.
    """
    config = trial_config(trial)
    bench = dict(bench or {})
    data_table = bench.pop("data", None)
    encoders_table = bench.pop("encoders", None)
    table: dict[str, Any] = {
        key: bench[key] for key in ("datasets", "data_dir", "limit", "device", "metric") if key in bench
    }
    table.update(
        {
            "fusions": [config["fusion"]],
            "heads": [config["head"]] if config.get("head") else [],
            "seeds": [int(s) for s in seeds],
            "with_unimodal": bool(bench.get("with_unimodal", False)),
            "mode": config.get("mode", "frozen"),
        }
    )
    if out:
        table["out"] = out
    if "device" not in table and config.get("device"):
        table["device"] = config["device"]
    train = {k: v for k, v in config.items() if k not in _NOT_IN_TRAIN}
    preset: dict[str, Any] = {"bench": table, "train": train}
    if data_table:
        preset["data"] = dict(data_table)
    if encoders_table:
        preset["encoders"] = dict(encoders_table)
    return _clean(preset)


def export_bench_preset(
    study: optuna.Study,
    path: str | Path,
    *,
    bench: dict[str, Any] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    trial_number: int | None = None,
    out: str | None = None,
    note: str | None = None,
) -> FrozenTrial:
    """Write the best trial (or ``trial_number``) of ``study`` as a bench preset; return the trial.

    Multi-objective studies export the Pareto-front trial that is best on the first objective unless
    ``trial_number`` picks another one.
    """
    import tomli_w

    if trial_number is not None:
        matches = [t for t in study.get_trials(deepcopy=False) if t.number == trial_number]
        if not matches or matches[0].state != TrialState.COMPLETE:
            raise TuneError(f"trial {trial_number} of study '{study.study_name}' is not a completed trial")
        trial = matches[0]
    else:
        front = best_trials(study)
        if not front:
            raise TuneError(f"study '{study.study_name}' has no completed trial to export")
        trial = front[0]
    preset = bench_preset(trial, bench=bench, seeds=seeds, out=out)
    values = ", ".join(f"{v:.6g}" for v in (trial.values or []))
    objectives = ", ".join(study.user_attrs.get("fusionzoo", {}).get("objectives", []))
    header = (
        f"# exported by `fusionzoo tune`: study '{study.study_name}', trial {trial.number}\n"
        f"# {objectives or 'objective'} = {values}\n"
        f"# run it: fusionzoo bench --config {Path(path).name}\n"
    )
    if note:
        header += f"# note: {note}\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, header + tomli_w.dumps(preset))
    return trial


def save_plots(study: optuna.Study, directory: str | Path) -> tuple[list[Path], list[str]]:
    """Optuna's optimization history and parameter importances (and the Pareto front for several
    objectives) as PNG via matplotlib, plus HTML when plotly is installed. Returns (files, notes)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as mpl_vis

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    notes: list[str] = []
    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.values and all(math.isfinite(v) for v in t.values)
    ]
    names = study.user_attrs.get("fusionzoo", {}).get("objectives") or ["objective"]
    prefix = _slug(study.study_name)
    plots: list[tuple[str, Any, dict[str, Any]]] = []
    if len(study.directions) == 1:
        plots.append(("history", "plot_optimization_history", {"target_name": names[0]}))
        plots.append(("importances", "plot_param_importances", {"target_name": names[0]}))
    else:
        for i, name in enumerate(names):
            target = _objective_target(i)
            plots.append(
                (f"history_{name}", "plot_optimization_history", {"target": target, "target_name": name})
            )
            plots.append(
                (f"importances_{name}", "plot_param_importances", {"target": target, "target_name": name})
            )
        plots.append(("pareto_front", "plot_pareto_front", {"target_names": names}))
    if len(complete) < 2:
        notes.append(f"{len(complete)} completed trial(s): parameter importances need at least 2")
        plots = [p for p in plots if "importances" not in p[0]]
    import warnings

    for label, function, kwargs in plots:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                getattr(mpl_vis, function)(study, **kwargs)
            except (ValueError, RuntimeError) as exc:
                notes.append(f"{label}: {exc}")
                plt.close("all")
                continue
        path = directory / f"{prefix}_{label}.png"
        plt.gcf().savefig(path, dpi=120, bbox_inches="tight")
        plt.close("all")
        files.append(path)
    try:
        import plotly  # noqa: F401
    except ImportError:
        notes.append("plotly is not installed: PNG plots only (pip install plotly for interactive HTML)")
    else:
        from optuna import visualization as plotly_vis

        for label, function, kwargs in plots:
            try:
                figure = getattr(plotly_vis, function)(study, **kwargs)
            except (ValueError, RuntimeError) as exc:
                notes.append(f"{label} (html): {exc}")
                continue
            path = directory / f"{prefix}_{label}.html"
            figure.write_html(str(path), include_plotlyjs="cdn")
            files.append(path)
    return files, notes


def _objective_target(index: int) -> Any:
    def target(trial: FrozenTrial) -> float:
        return float(trial.values[index])

    return target


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:120]
