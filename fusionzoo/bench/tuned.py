"""``bench --tune-trials N``: the same Optuna budget for every cell of the grid, then every seed.

The protocol recommended for "is fusion A really better than B" (docs/benchmarking.md): a fusion's
default hyperparameters may suit one fusion and not another, so each (dataset, fusion, head) cell of
the grid gets one study with **the same budget** — the ``[tune]`` table's sampler and seed, ``N``
trials, the ``[train]`` epochs and the ``[tune]`` metric, which is a **validation** column (the test
split is never seen while tuning) — and the best trial's configuration is then trained over the
bench seeds and tested like any other run.

- Studies live in ``<runs dir>/tune/`` (SQLite unless ``[tune] storage`` names another) under the
  name ``bench__<dataset>__<fusion>__<head>`` and resume as ``fusionzoo tune`` studies do: a rerun
  adds only the missing trials, and a study whose data, epochs, metric or space changed is refused.
- The tuned runs' identity is their configuration (``config_hash`` covers every hyperparameter), so
  they never mix with the untuned runs of the same fusion, and a rerun reuses them.
- The linear-probe floor is not tuned (its regularisation is chosen on validation already).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from fusionzoo.experiment import Experiment, RunSpec
from fusionzoo.io import atomic_write
from fusionzoo.train.config import RunConfig

__all__ = ["TunedCell", "print_tuned", "tune_grid", "tuned_specs"]

TUNED_FILE = "tuned.json"


@dataclass
class TunedCell:
    """One cell's study and the configuration it chose."""

    dataset: str
    fusion: str
    head: str
    train_protocol: str
    study: str
    trials: int  # finished trials (complete + pruned) the choice was made from
    complete: int
    best_trial: int
    best_value: float
    metric: str
    params: dict[str, Any]
    config: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.dataset, self.fusion, self.head, self.train_protocol)


def _cell_key(spec: RunSpec) -> tuple[str, str, str, str]:
    return (spec.dataset, spec.fusion, spec.head, spec.config.train_protocol)


def study_name(dataset: str, fusion: str, head: str, train_protocol: str = "") -> str:
    name = f"bench__{dataset}__{fusion}__{head}"
    return name + (f"__train_{train_protocol}" if train_protocol else "")


def tune_grid(
    experiment: Experiment,
    specs: list[RunSpec],
    runs_dir: Any,
    trials: int,
    console: Any,
    fingerprints: dict[str, str],
) -> dict[tuple[str, str, str, str], TunedCell]:
    """Run (or resume) one study of ``trials`` trials per trainable cell of ``specs``; the choices."""
    import optuna

    from fusionzoo.tune.budget import budget_counts
    from fusionzoo.tune.study import best_trials, settings_from_config, trial_config
    from fusionzoo.tune.worker import run_worker

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = experiment.config
    cells = list(dict.fromkeys(_cell_key(s) for s in specs if s.kind == "train"))
    spaces = cell_space_overrides(config, cells)  # a [space] key no cell has: an error before any work
    tune_dir = str(runs_dir / "tune")
    chosen: dict[tuple[str, str, str, str], TunedCell] = {}
    for number, (dataset, fusion, head, train_protocol) in enumerate(cells, 1):
        settings = settings_from_config(config, runs_dir=tune_dir, fusion=fusion, head=head, dataset=dataset)
        base = dict(settings.base_config, train_protocol=train_protocol)
        settings = settings.replace(
            space_overrides=spaces[(dataset, fusion, head, train_protocol)],
            trials=trials,
            study_name=study_name(dataset, fusion, head, train_protocol),
            base_config=base,
            data_fingerprint=fingerprints[dataset],
        )
        data = experiment.training_data(dataset, console=console)
        label = f"{fusion} + {head}" + (f" · train {train_protocol}" if train_protocol else "")

        def on_trial(study: Any, trial: Any, label: str = label, metric: str = settings.metric) -> None:
            value = "pruned" if trial.value is None else f"{metric} {trial.value:.4f}"
            console.print(
                f"  [dim]tune {label}: trial {trial.number} {trial.state.name.lower()} ({value})[/dim]"
            )

        console.print(
            f"[bold]tuning[/bold] {label} ({number}/{len(cells)}): study {settings.study_name}, "
            f"{trials} trials, sampler {settings.sampler} (seed {settings.seed}), {base.get('epochs')} epochs, "
            f"objective {settings.metric} (validation)"
        )
        report = run_worker(settings, data=data, on_trial=on_trial)
        best = best_trials(report.study)
        if not best:
            raise RuntimeError(
                f"tuning {label}: no trial of study {settings.study_name} completed (all failed or pruned); "
                f"see {tune_dir}"
            )
        counts = budget_counts(report.study.get_trials(deepcopy=False))
        trial = best[0]
        chosen[(dataset, fusion, head, train_protocol)] = TunedCell(
            dataset=dataset,
            fusion=fusion,
            head=head,
            train_protocol=train_protocol,
            study=settings.study_name,
            trials=counts.counted,
            complete=counts.complete,
            best_trial=trial.number,
            best_value=float(trial.value),
            metric=settings.metric,
            params=dict(trial.params),
            config=trial_config(trial),
        )
    _save(runs_dir, chosen, trials, config)
    return chosen


def cell_space_overrides(config: Any, cells: list[tuple[str, str, str, str]]) -> dict[Any, dict[str, Any]]:
    """Each cell's part of the ``[space]`` table: the entries naming one of its parameters (or a
    ``RunConfig`` field any space may add), so ``fluid_queries = 8`` fixes FLUID's queries and leaves
    concat_mlp's study alone. An entry no cell knows raises ``SearchSpaceError`` naming it."""
    from fusionzoo.tune.space import ADDABLE_TRAIN_FIELDS, SearchSpaceError, build_space

    out, used = {}, set()
    for cell in cells:
        _, fusion, head, _ = cell
        valid = set(build_space(fusion, head, mode=config.bench.mode).valid_names()) | set(
            ADDABLE_TRAIN_FIELDS
        )
        out[cell] = {k: v for k, v in config.space.items() if k in valid}
        used |= set(out[cell])
    unknown = sorted(set(config.space) - used)
    if unknown:
        raise SearchSpaceError(
            f"{config.source}: [space] {', '.join(unknown)}: no fusion/head of the grid has such a "
            "parameter (fusionzoo tune --show-space FUSION lists a cell's names)"
        )
    return out


def tuned_specs(specs: list[RunSpec], chosen: dict[tuple[str, str, str, str], TunedCell]) -> list[RunSpec]:
    """The grid with every trainable run replaced by its cell's best configuration (same seed)."""
    out = []
    for spec in specs:
        cell = chosen.get(_cell_key(spec)) if spec.kind == "train" else None
        if cell is None:
            out.append(spec)
            continue
        run = RunConfig.from_dict(cell.config).replace(
            fusion=spec.config.fusion, head=spec.config.head, seed=spec.seed, device=spec.config.device
        )
        out.append(RunSpec.create(spec.dataset, run, spec.data_fingerprint))
    return out


def _save(runs_dir: Any, chosen: dict[Any, TunedCell], trials: int, config: Any) -> None:
    payload = {
        "trials": trials,
        "sampler": config.tune.sampler,
        "seed": config.tune.seed,
        "pruner": config.tune.pruner,
        "metric": config.tune.metric,
        "epochs": config.run_config().epochs,
        "cells": [dataclasses.asdict(c) for c in chosen.values()],
    }
    atomic_write(runs_dir / TUNED_FILE, json.dumps(payload, indent=2, sort_keys=True, default=str))


def print_tuned(console: Any, chosen: dict[Any, TunedCell], trials: int, config: Any) -> None:
    """The budget and the hyperparameters each cell's study chose (under the leaderboard)."""
    from rich.table import Table

    table = Table(
        title=(
            f"tuned: {trials} trials per cell, sampler {config.tune.sampler} (seed {config.tune.seed}), "
            f"pruner {config.tune.pruner}, {config.run_config().epochs} epochs, objective "
            f"{config.tune.metric} on the validation split"
        ),
        title_justify="left",
    )
    for column in ("fusion", "head", "trials", "best trial", "best val", "chosen hyperparameters"):
        table.add_column(column)
    for cell in chosen.values():
        params = ", ".join(f"{k}={_short(v)}" for k, v in sorted(cell.params.items()))
        table.add_row(
            cell.fusion + (f" · {cell.train_protocol}" if cell.train_protocol else ""),
            cell.head,
            f"{cell.trials} ({cell.complete} complete)",
            str(cell.best_trial),
            f"{cell.best_value:.4f}",
            params or "(nothing searched)",
        )
    console.print(table)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
