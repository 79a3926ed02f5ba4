"""``bench --tune-trials N``: the same Optuna budget for every cell of the grid, then every seed.

The protocol recommended for "is fusion A really better than B" (docs/benchmarking.md): a fusion's
default hyperparameters may suit one fusion and not another, so each (dataset, fusion, head) cell of
the grid gets one study with **the same budget** — the ``[tune]`` table's sampler and seed, ``N``
trials, the ``[train]`` epochs and the ``[tune]`` metric, which is a **validation** column (the test
split is never seen while tuning) — and the best trial's configuration is then trained over the
bench seeds and tested like any other run.

- **What is trained is what won:** the best trial's whole configuration, its fusion and head specs
  with every sampled hyperparameter (canonical spec strings, so the run identity and the leaderboard
  show them) and its training fields; only the seed is the evaluation seed's.
- **Tuning seeds are not evaluation seeds:** trials train with seed ``10_000 + [tune] seed``
  (:func:`fusionzoo.tune.study.tuning_seed`); a grid whose ``[bench] seeds`` contain it is refused
  before any work, so no reported seed repeats the trial that won on its own luck.
- **Tuning seeds vary with the split** (``--split-seeds``): each split seed ``s`` is a cell of its own
  (its own study, on its own train/validation split), whose sampler seed is ``[tune] seed + s`` and
  whose trials train with seed ``10_000 + [tune] seed + s``, so the spread over split seeds covers
  the tuning's randomness too.
- **One best-epoch rule:** every trial, tuned run and untuned run picks its best epoch on the
  ``[train]`` metric (``RunConfig.metric``); the ``[tune]`` metric (measured at that epoch) ranks the
  trials.
- **The budget is equal in trials, not in compute:** pruned trials stop early, so each cell's trials
  complete/pruned/failed and the epochs they actually trained are shown (and in ``tuned.json``).
- Studies live in ``<runs dir>/tune/`` (SQLite unless ``[tune] storage`` names another) under the
  name ``bench__<dataset>__<fusion>__<head>`` and resume as ``fusionzoo tune`` studies do: a rerun
  adds only the missing trials, and a study whose data, epochs, metric, seed or space changed is
  refused.
- The tuned runs' identity is their configuration (``config_hash`` covers every hyperparameter), so
  they never mix with the untuned runs of the same fusion, and a rerun reuses them.
- The linear-probe floor is not tuned (its regularisation is chosen on validation already).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from fusionzoo.experiment import Experiment, RunSpec, canonical_spec
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
    trials: int  # finished trials (complete + pruned + failed) the choice was made from
    complete: int
    best_trial: int
    best_value: float
    metric: str
    params: dict[str, Any]
    config: dict[str, Any]  # the best trial's RunConfig (its seed is the tuning seed)
    tuned_fusion: str = ""  # the canonical fusion spec every seed trains (the best trial's)
    tuned_head: str = ""
    pruned: int = 0
    failed: int = 0
    epochs: int = 0  # epochs trained by all of the study's finished trials
    train_seed: int = 0

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

    from fusionzoo.datasets.specs import DataKey
    from fusionzoo.tune import TuneError
    from fusionzoo.tune.budget import budget_counts
    from fusionzoo.tune.study import (
        StudyMismatchError,
        best_trials,
        settings_from_config,
        trial_config,
        tuning_seed,
    )
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
        split_seed = DataKey.parse(dataset).split_seed
        if split_seed is not None:  # tuning seeds vary with the split: sampler and trials both
            settings = settings.replace(seed=settings.seed + split_seed)
            base["seed"] = tuning_seed(config.tune.seed + split_seed)
        settings = settings.replace(
            space_overrides=spaces[(dataset, fusion, head, train_protocol)],
            trials=trials,
            study_name=study_name(dataset, fusion, head, train_protocol),
            base_config=base,
            data_fingerprint=fingerprints[dataset],
            select_on_objective=False,  # best epochs on the [train] metric, as every run of the grid
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
            f"{trials} trials, sampler {settings.sampler} (seed {settings.seed}), trials train with seed "
            f"{base['seed']}, {base.get('epochs')} epochs, objective {settings.metric} (validation)"
        )
        try:
            report = run_worker(settings, data=data, on_trial=on_trial)
        except StudyMismatchError as exc:
            raise TuneError(
                f"study '{exc.name}' in {exc.storage} was tuned with other settings ({exc.details}); its "
                "trials are not comparable with new ones. Bench into another --out, or delete the study "
                f"(optuna delete-study --study-name {exc.name} --storage {exc.storage})"
            ) from None
        best = best_trials(report.study)
        if not best:
            raise RuntimeError(
                f"tuning {label}: no trial of study {settings.study_name} completed (all failed or pruned); "
                f"see {tune_dir}"
            )
        counts = budget_counts(report.study.get_trials(deepcopy=False))
        trial = best[0]
        trial_run = trial_config(trial)
        chosen[(dataset, fusion, head, train_protocol)] = TunedCell(
            dataset=dataset,
            fusion=fusion,
            head=head,
            train_protocol=train_protocol,
            study=settings.study_name,
            trials=counts.finished,
            complete=counts.complete,
            best_trial=trial.number,
            best_value=float(trial.value),
            metric=settings.metric,
            params=dict(trial.params),
            config=trial_run,
            tuned_fusion=canonical_spec("fusion", trial_run["fusion"]),
            tuned_head=canonical_spec("head", trial_run["head"]),
            pruned=counts.pruned,
            failed=counts.failed,
            epochs=counts.epochs,
            train_seed=int(trial_run["seed"]),
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
    """The grid with every trainable run replaced by its cell's best configuration: the best trial's
    fusion and head specs and training fields, at the run's own (evaluation) seed."""
    out = []
    for spec in specs:
        cell = chosen.get(_cell_key(spec)) if spec.kind == "train" else None
        if cell is None:
            out.append(spec)
            continue
        run = RunConfig.from_dict(cell.config).replace(
            fusion=cell.tuned_fusion, head=cell.tuned_head, seed=spec.seed, device=spec.config.device
        )
        out.append(spec.with_config(run))
    return out


def _protocol_lines(config: Any, trials: int) -> list[str]:
    """The protocol every cell shares, in words (the bench output and ``tuned.json``'s ``protocol``)."""
    from fusionzoo.tune.study import tuning_seed

    run = config.run_config()
    seeds = ", ".join(str(s) for s in config.bench.seeds)
    return [
        f"tuned: {trials} trials per cell, sampler {config.tune.sampler} (seed {config.tune.seed}), pruner "
        f"{config.tune.pruner}, {run.epochs} epochs, objective {config.tune.metric} on the validation split",
        f"trials train with seed {tuning_seed(config.tune.seed)}, the runs with the evaluation seeds {seeds}; "
        f"every trial and run picks its best epoch on val {run.metric}",
    ]


def _save(runs_dir: Any, chosen: dict[Any, TunedCell], trials: int, config: Any) -> None:
    from fusionzoo.tune.study import tuning_seed

    payload = {
        "trials": trials,
        "sampler": config.tune.sampler,
        "seed": config.tune.seed,
        "train_seed": tuning_seed(config.tune.seed),
        "evaluation_seeds": list(config.bench.seeds),
        "pruner": config.tune.pruner,
        "metric": config.tune.metric,
        "best_epoch_metric": config.run_config().metric,
        "epochs": config.run_config().epochs,
        "protocol": "; ".join(_protocol_lines(config, trials)),
        "cells": [dataclasses.asdict(c) for c in chosen.values()],
    }
    atomic_write(runs_dir / TUNED_FILE, json.dumps(payload, indent=2, sort_keys=True, default=str))


def print_tuned(console: Any, chosen: dict[Any, TunedCell], trials: int, config: Any) -> None:
    """The budget, what each cell's study spent and the configuration it chose (under the leaderboard)."""
    from rich.markup import escape
    from rich.table import Table

    for line in _protocol_lines(config, trials):
        console.print(escape(line))
    table = Table(
        title="tuned configurations (budget equal in trials; pruned trials train fewer epochs)",
        title_justify="left",
    )
    for column in ("fusion", "head", "trials", "epochs trained", "best trial", "best val", "trained spec"):
        table.add_column(column)
    base = config.run_config().to_dict()
    for cell in chosen.values():
        training = {
            k: v for k, v in cell.config.items() if k not in ("fusion", "head", "seed") and base.get(k) != v
        }  # the training fields the study changed (lr, weight decay, dropout, loss weights, ...)
        spec = f"{cell.tuned_fusion} + {cell.tuned_head}"
        if training:
            spec += "; " + ", ".join(f"{k}={_short(v)}" for k, v in sorted(training.items()))
        table.add_row(
            escape(cell.fusion + (f" · {cell.train_protocol}" if cell.train_protocol else "")),
            escape(cell.head),
            f"{cell.trials}: {cell.complete} complete, {cell.pruned} pruned, {cell.failed} failed",
            str(cell.epochs),
            str(cell.best_trial),
            f"{cell.best_value:.4f}",
            escape(spec),
        )
    console.print(table)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
