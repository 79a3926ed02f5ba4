"""A tuning study: its settings, its identity, its sampler and pruner, opening it, its best trials.

A study remembers what defines its objective (:func:`study_identity`: data fingerprint, epoch budget,
objectives, fixed hyperparameters, search space, training semantics); resuming it with any of those
changed is refused, naming the change (:func:`open_study`).
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from fusionzoo.tune import TuneError
from fusionzoo.tune.objective import (  # the trials' seed and base config: re-exported
    TUNING_SEED_OFFSET,
    ObjectiveSpec,
    resolve_objectives,
    trial_base_config,
    tuning_seed,
)
from fusionzoo.tune.space import TRAIN_FIELD_OF, SearchSpace, build_space, describe_distribution
from fusionzoo.tune.storage import ResolvedStorage, first_line

__all__ = [
    "STUDY_ATTR",
    "TUNING_SEED_OFFSET",
    "StudyMismatchError",
    "TuneSettings",
    "best_trials",
    "build_settings_space",
    "default_study_name",
    "make_pruner",
    "make_sampler",
    "open_study",
    "sampler_seed",
    "settings_from_config",
    "study_identity",
    "trial_base_config",
    "trial_config",
    "tuning_seed",
]

STUDY_ATTR = "fusionzoo"


class StudyMismatchError(TuneError):
    """An existing study was created for other settings (:func:`open_study`); ``details`` names them."""

    def __init__(self, message: str, name: str, storage: str, details: str) -> None:
        super().__init__(message)
        self.name, self.storage, self.details = name, storage, details


# --------------------------------------------------------------------------------------------- settings
@dataclass
class TuneSettings:
    """Everything one tuning worker needs; picklable, so ``--workers N`` can hand it to children.

    base_config: a ``RunConfig`` dict (epochs, dim, batch size, device...), the fixed part of a trial.
    data_options: the fields of ``fusionzoo.prepare.DataOptions`` (dataset, encoders, cache...).
    data_factory: ``"module:function"`` returning the training data (overrides ``data_options``).
    space_overrides: the ``[space]`` table of the tune TOML; pruner_options its ``[pruner]`` table.
    """

    fusion: str
    head: str | None = None
    trials: int = 50
    timeout: float | None = None
    storage: str | None = None
    study_name: str | None = None
    seed: int = 0
    metric: str = "val_macro_f1"
    objectives: list[str] = field(default_factory=list)
    pruner: str = "median"
    sampler: str = "tpe"
    runs_dir: str = "runs"
    base_config: dict[str, Any] = field(default_factory=dict)
    data_options: dict[str, Any] = field(default_factory=dict)
    data_factory: str | None = None
    space_overrides: dict[str, Any] = field(default_factory=dict)
    space_source: str = "config"
    pruner_options: dict[str, Any] = field(default_factory=dict)
    plugins: list[str] = field(default_factory=list)
    heartbeat_interval: int | None = 60
    grace_period: int | None = None
    max_retry: int | None = 3
    worker_index: int = 0
    aux_losses: list[str] | None = None  # None: probe the model
    data_fingerprint: str = ""  # of the data the trials train on (set before the study is opened)
    # True (fusionzoo tune): a trial's best epoch is the one with the best objective (macro_f1/accuracy);
    # False (bench --tune-trials): base_config's metric picks it, as it does for every run of the grid
    select_on_objective: bool = True

    def objective_specs(self) -> list[ObjectiveSpec]:
        return resolve_objectives(self.metric, self.objectives)

    def replace(self, **changes: Any) -> TuneSettings:
        return dataclasses.replace(self, **changes)


def settings_from_config(
    config: Any,
    *,
    runs_dir: str,
    fusion: str | None = None,
    head: str | None = None,
    dataset: str | None = None,
    data_factory: str | None = None,
    plugins: Sequence[str] = (),
    worker_index: int = 0,
) -> TuneSettings:
    """The settings of one study from a validated ``ExperimentConfig`` (nothing is loaded or trained).

    ``fusion`` (with ``head``, default the fusion's natural head) replaces the ``[tune]`` table's pair,
    and ``dataset`` picks one of ``[bench] datasets``, so a caller can tune every cell of a bench grid
    under one config. A bad spec, width or data option is a ``ConfigError`` now, before any data.
    """
    from fusionzoo.config import ConfigError
    from fusionzoo.experiment import Experiment, build_once, check_grid_loss_weights

    tune_config = config.tune
    if fusion is None:
        fusion, head = tune_config.fusion, tune_config.head
    if fusion is None:
        raise ConfigError("--fusion is required (or --show-space FUSION to print a search space)")
    if dataset is None:
        if len(config.bench.datasets) != 1:
            raise ConfigError(
                f"a study tunes on one dataset; {config.source} names {', '.join(config.bench.datasets)} "
                "(pick one with --dataset)"
            )
        dataset = config.bench.datasets[0]
    experiment = Experiment(config)
    base = experiment.base_run_config().replace(fusion=fusion, head=head)
    aux_names = build_once(base, (base.fusion, base.resolved_head()))  # a bad spec or --dim fails now
    check_grid_loss_weights(base, [aux_names])
    if data_factory is None:
        backend = experiment.backend(dataset)
        try:
            backend.check_options(dict(config.data))
        except ValueError as exc:  # a DataError: an unknown option or a value of the wrong type
            raise ConfigError(str(exc)) from None
    return TuneSettings(
        fusion=fusion,
        head=head,
        trials=tune_config.trials,
        timeout=tune_config.timeout,
        storage=tune_config.storage,
        study_name=tune_config.study,
        seed=tune_config.seed,
        metric=tune_config.metric,
        objectives=list(tune_config.objectives),
        pruner=tune_config.pruner,
        sampler=tune_config.sampler,
        runs_dir=runs_dir,
        base_config=experiment.base_run_config(seed=tuning_seed(tune_config.seed)).to_dict(),
        data_options=dataclasses.asdict(experiment.data_options(dataset)),
        data_factory=data_factory,
        space_overrides=dict(config.space),
        space_source=config.source,
        pruner_options=config.pruner.values(),
        plugins=list(plugins),
        heartbeat_interval=tune_config.heartbeat_interval,
        grace_period=tune_config.grace_period,
        max_retry=tune_config.max_retry,
        worker_index=worker_index,
    )


def default_study_name(settings: TuneSettings, space: SearchSpace) -> str:
    keys = "+".join(o.key for o in settings.objective_specs())
    return f"{space.fusion}__{space.head}__{keys}"


def build_settings_space(settings: TuneSettings) -> SearchSpace:
    mode = str(settings.base_config.get("mode", "frozen"))
    return build_space(
        settings.fusion,
        settings.head,
        mode=mode,
        aux_losses=settings.aux_losses,
        overrides=settings.space_overrides,
        overrides_source=settings.space_source,
    )


# ------------------------------------------------------------------------------------- samplers/pruners
def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """``tpe`` (constant liar, for parallel workers), ``random`` or ``gp``, seeded."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.GPSampler(seed=seed)
    raise TuneError(f"unknown sampler '{name}'; valid samplers: tpe, random, gp")


def make_pruner(
    name: str, options: dict[str, Any] | None, epochs: int, multi_objective: bool
) -> optuna.pruners.BasePruner:
    options = dict(options or {})
    if multi_objective or name == "none":
        return optuna.pruners.NopPruner()
    try:
        if name == "median":
            return optuna.pruners.MedianPruner(**{"n_startup_trials": 5, "n_warmup_steps": 0, **options})
        if name == "hyperband":
            defaults = {"min_resource": 1, "max_resource": max(1, epochs), "reduction_factor": 3}
            return optuna.pruners.HyperbandPruner(**{**defaults, **options})
        if name == "successive_halving":  # rungs at 1, 3, 9, ... epochs: the top 1/3 of a rung goes on
            defaults = {"min_resource": 1, "reduction_factor": 3, "min_early_stopping_rate": 0}
            return optuna.pruners.SuccessiveHalvingPruner(**{**defaults, **options})
    except TypeError as exc:
        raise TuneError(f"[pruner] options {options} do not fit the {name} pruner: {exc}") from None
    raise TuneError(f"unknown pruner '{name}'; valid pruners: median, hyperband, successive_halving, none")


def sampler_seed(seed: int, worker_index: int, existing_trials: int) -> int:
    """A sampler seed that differs per worker and per resume (a resumed random search must not
    replay the first run's suggestions), yet is reproducible for a given history."""
    return (seed * 1_000_003 + worker_index * 7_919 + existing_trials) % (2**31 - 1)


# ------------------------------------------------------------------------------------------------ study
def open_study(
    settings: TuneSettings,
    storage: ResolvedStorage,
    space: SearchSpace,
    *,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """Create or load (``load_if_exists``) the study; a direction/objective/model mismatch is an error."""
    objectives = settings.objective_specs()
    directions = [o.direction for o in objectives]
    name = settings.study_name or default_study_name(settings, space)
    try:
        study = optuna.create_study(
            storage=storage.storage,
            study_name=name,
            directions=directions,
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
    except Exception as exc:  # e.g. the database went away between resolve and create
        raise TuneError(
            f"cannot create or load study '{name}' in {storage.display}: {first_line(exc)}"
        ) from None
    existing = [d.name.lower() for d in study.directions]
    if existing != directions:
        raise TuneError(
            f"study '{name}' in {storage.display} already exists with direction(s) {', '.join(existing)}, "
            f"but this run {'optimises' if len(directions) == 1 else 'has objectives'} "
            f"{', '.join(o.key for o in objectives)} ({', '.join(directions)}); use another --study name "
            "or the study's own metric"
        )
    identity = study_identity(settings, space)
    recorded = study.user_attrs.get(STUDY_ATTR)
    if recorded is None:
        study.set_user_attr(STUDY_ATTR, identity)
    else:
        changed = [key for key in identity if recorded.get(key) != identity[key]]
        if changed:
            details = "; ".join(
                f"{key}: the study has {_short(recorded.get(key))}, this run {_short(identity[key])}"
                for key in changed
            )
            raise StudyMismatchError(
                f"study '{name}' in {storage.display} was created for other settings ({details}). Its trials "
                f"would not be comparable with new ones; use another --study name (e.g. --study {name}-2) "
                "or the study's own settings",
                name,
                storage.display,
                details,
            )
    return study


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def study_identity(settings: TuneSettings, space: SearchSpace) -> dict[str, Any]:
    """What defines a trial's objective: data, budget, metric(s), fixed hyperparameters, search space.

    Two trials of one study must be comparable, so resuming a study with any of these changed is
    refused (:func:`open_study`)."""
    from fusionzoo.train.config import TRAINING_SEMANTICS

    base = trial_base_config(settings, space)
    searched = {TRAIN_FIELD_OF.get(p.name, p.name) for p in space.searched() if p.component == "train"}
    fixed = {k: v for k, v in base.identity().items() if k not in searched and k not in ("fusion", "head")}
    from fusionzoo.tune.objective import LATENCY_SEMANTICS

    keys = [o.key for o in settings.objective_specs()]
    return {
        "objectives": keys,
        **({"latency": LATENCY_SEMANTICS} if "latency" in keys else {}),  # what the objective measures
        "fusion": space.fusion,
        "head": space.head,
        "data": settings.data_fingerprint,
        "epochs": base.epochs,
        "train_seed": base.seed,
        "fixed": json_safe(fixed),
        "space": {
            p.name: (repr(p.fixed) if p.is_fixed else describe_distribution(p.distribution))
            for p in space.params.values()
        },
        "semantics": TRAINING_SEMANTICS,
    }


def json_safe(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, sort_keys=True, default=str))


# ------------------------------------------------------------------------------------------ best trials
def best_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The best trial (single objective) or the Pareto front (``study.best_trials``), best first."""
    if len(study.directions) > 1:
        front = list(study.best_trials)
        first_max = study.directions[0].name == "MAXIMIZE"
        return sorted(front, key=lambda t: (t.values[0], -t.number), reverse=first_max)
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not complete:
        return []
    reverse = study.direction.name == "MAXIMIZE"
    return sorted(complete, key=lambda t: t.value, reverse=reverse)


def trial_config(trial: FrozenTrial) -> dict[str, Any]:
    """The full ``RunConfig`` dict a trial trained (stored as its ``config`` user attr)."""
    config = trial.user_attrs.get("config")
    if not isinstance(config, dict):
        raise TuneError(f"trial {trial.number} has no stored config (was it run by fusionzoo tune?)")
    return copy.deepcopy(config)
