"""Optuna studies for ``fusionzoo tune``: storages, objectives, exact trial budgets, many workers.

Storage (``--storage``):
    (none)                     SQLite file ``<runs dir>/optuna.db`` (one machine, few processes)
    sqlite:///x.db, postgresql+psycopg2://user:pw@host/db, any SQLAlchemy URL
                               ``RDBStorage`` with heartbeats: a worker that dies leaves a trial whose
                               heartbeat stops; after ``grace_period`` another worker fails it and
                               ``RetryHeartbeatStaleTrialCallback`` re-queues it (state WAITING)
    journal:PATH               ``JournalStorage(JournalFileBackend(PATH))`` (many processes, one machine)
    memory                     in-process only (tests, throw-away runs)

Trial budget. ``--trials N`` is the *target total* of the study, not a number to add: a rerun runs
only the remainder, and several workers together stop at exactly N. A trial counts toward the budget
when it is COMPLETE, PRUNED, RUNNING, WAITING (a re-queued retry) or FAILED by the objective itself
(an exception or a diverged run, user attr ``fusionzoo_status``). A trial failed by the heartbeat
mechanism does not count (its retry does), nor does an *overflow* trial (below).

The claim is race-free because Optuna numbers trials atomically in the storage: right after ``ask``
a worker counts the budget-counting trials whose number is *smaller* than its own. That set was fixed
before its own trial existed, so two workers can never both see room for the last slot; the loser
marks its trial FAILED with status ``overflow`` and stops. Before each ``ask`` a cheap pre-check stops
the worker when the budget is already taken, so overflow trials only occur in a genuine race.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import inspect
import logging
import math
import multiprocessing
import os
import socket
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from fusionzoo import registry
from fusionzoo.tune.space import SearchSpace, build_space

__all__ = [
    "STATUS_ATTR",
    "Objective",
    "ResolvedStorage",
    "TuneError",
    "TuneSettings",
    "WorkerReport",
    "budget_counts",
    "default_study_name",
    "launch_workers",
    "mask_url",
    "open_study",
    "resolve_objectives",
    "resolve_storage",
    "run_worker",
]

STATUS_ATTR = "fusionzoo_status"  # complete | pruned | failed | diverged | overflow
STUDY_ATTR = "fusionzoo"
DEFAULT_DB = "optuna.db"

# validation metrics (fusionzoo.train.metrics) the tuner may optimise, all maximised
VAL_METRICS = (
    "accuracy",
    "top5",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "acc_head",
    "acc_medium",
    "acc_tail",
    "acc_human",
)
# objectives that are not validation metrics (multi-objective mode), all minimised
COST_OBJECTIVES = {
    "params": "trainable parameters of the model",
    "latency": "inference latency, ms per sample (eval batch on this device)",
    "train_time": "training time of the trial, seconds",
}


class TuneError(ValueError):
    """A tuning input is wrong (storage, metric, study...); the message names it and the fix."""


class BudgetExhausted(Exception):
    """Raised inside the objective when the trial lost the race for the last budget slot."""


class _OverflowLogFilter(logging.Filter):
    """Hide Optuna's "Trial N failed" warnings for overflow trials: losing the race for the last slot
    is expected, not an error worth a traceback."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(message.startswith(f"Trial {n} failed") for n in self.numbers)


_OVERFLOW_LOG_FILTER = _OverflowLogFilter()


class TrialDiverged(Exception):
    """The training loss became NaN/inf; the trial fails (and counts toward the budget)."""


# ------------------------------------------------------------------------------------------- objectives
@dataclass(frozen=True)
class ObjectiveSpec:
    """One optimisation target: ``key`` in the trial's metrics and its direction."""

    key: str
    direction: str  # "maximize" | "minimize"

    @property
    def is_validation(self) -> bool:
        return self.key.startswith("val_")


def valid_metric_names() -> list[str]:
    return [f"val_{m}" for m in VAL_METRICS] + ["val_acc_geo_<geo>", *COST_OBJECTIVES]


def resolve_objective(name: str) -> ObjectiveSpec:
    """``val_macro_f1`` / ``macro_f1`` / ``accuracy`` / ``latency`` / ``params``... -> an objective."""
    text = name.strip()
    if text in COST_OBJECTIVES:
        return ObjectiveSpec(text, "minimize")
    bare = text[4:] if text.startswith("val_") else text
    if bare in VAL_METRICS or (bare.startswith("acc_geo_") and len(bare) > len("acc_geo_")):
        return ObjectiveSpec(f"val_{bare}", "maximize")
    import difflib

    valid = valid_metric_names()
    close = difflib.get_close_matches(text, valid + list(VAL_METRICS), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise TuneError(f"unknown metric '{name}'{hint}; valid metrics: {', '.join(valid)}")


def resolve_objectives(metric: str | None, objectives: Sequence[str] | str | None) -> list[ObjectiveSpec]:
    """``objectives`` (multi-objective, comma list) wins over ``metric`` (default ``val_macro_f1``)."""
    if isinstance(objectives, str):
        objectives = [o for o in (p.strip() for p in objectives.split(",")) if o]
    if objectives:
        specs = [resolve_objective(o) for o in objectives]
        keys = [s.key for s in specs]
        if len(set(keys)) != len(keys):
            raise TuneError(f"objectives repeat a metric: {', '.join(keys)}")
        return specs
    return [resolve_objective(metric or "val_macro_f1")]


# ---------------------------------------------------------------------------------------------- storage
def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    if url.startswith("journal:") or "://" not in url:
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable by SQLAlchemy: mask user:password@ by hand
        scheme, _, rest = url.partition("://")
        creds, at, host = rest.rpartition("@")
        if not at:
            return url
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"


@dataclass
class ResolvedStorage:
    """What ``--storage`` resolved to. ``display`` is safe to print (password masked)."""

    storage: BaseStorage
    display: str
    kind: str  # "sqlite" | "rdb" | "journal" | "memory"
    heartbeat_interval: int | None = None
    grace_period: int | None = None
    url: str = ""  # the full URL (with password), for dashboards and child processes

    @property
    def heartbeat(self) -> bool:
        return self.heartbeat_interval is not None

    @property
    def shared(self) -> bool:
        """Whether other processes can open the same storage."""
        return self.kind != "memory"


def default_storage_url(runs_dir: str | Path) -> str:
    return f"sqlite:///{Path(runs_dir).resolve() / DEFAULT_DB}"


def resolve_storage(
    storage: str | None,
    runs_dir: str | Path = "runs",
    *,
    heartbeat_interval: int | None = 60,
    grace_period: int | None = None,
    max_retry: int | None = 3,
) -> ResolvedStorage:
    """Open the storage behind ``storage`` (see the module docstring); unreachable -> :class:`TuneError`.

    ``heartbeat_interval=None`` disables heartbeats; ``grace_period`` defaults to 2 × the interval.
    """
    if storage is None or not str(storage).strip():
        try:
            Path(runs_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TuneError(
                f"runs directory '{runs_dir}' cannot be created ({exc}); pass a directory with --out"
            ) from None
        storage = default_storage_url(runs_dir)
    storage = str(storage).strip()
    if storage in ("memory", ":memory:"):
        return ResolvedStorage(optuna.storages.InMemoryStorage(), "memory", "memory", url="memory")
    if storage.startswith("journal:"):
        return _journal_storage(storage)
    if "://" not in storage:
        if Path(storage).suffix in (".db", ".sqlite", ".sqlite3"):
            storage = f"sqlite:///{Path(storage).resolve()}"
        else:
            raise TuneError(
                f"storage '{storage}' is not understood; use a SQLAlchemy URL (sqlite:///runs/optuna.db, "
                "postgresql+psycopg2://user:password@host:5432/db), journal:PATH, or a .db file path"
            )
    return _rdb_storage(storage, heartbeat_interval, grace_period, max_retry)


def _journal_storage(spec: str) -> ResolvedStorage:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = Path(spec[len("journal:") :]).expanduser()
    if not str(path) or path.is_dir():
        raise TuneError(f"storage '{spec}': journal:PATH needs a file path, e.g. journal:runs/optuna.journal")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path))
    except OSError as exc:
        raise TuneError(f"storage '{spec}': cannot open the journal file: {exc}") from None
    return ResolvedStorage(JournalStorage(backend), f"journal:{path}", "journal", url=f"journal:{path}")


def _rdb_storage(
    url: str, heartbeat_interval: int | None, grace_period: int | None, max_retry: int | None
) -> ResolvedStorage:
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    shown = mask_url(url)
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError as exc:
        raise TuneError(f"storage '{shown}' is not a valid SQLAlchemy URL: {exc}") from None
    backend = parsed.get_backend_name()
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            try:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TuneError(f"cannot open storage '{shown}': {exc}") from None
        engine_kwargs["connect_args"] = {"timeout": 60}
    elif backend == "postgresql":
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            callback = None
            if heartbeat_interval is not None:
                callback = _retry_callback(max_retry)
            for attempt in range(3):
                try:
                    rdb = optuna.storages.RDBStorage(
                        url,
                        engine_kwargs=engine_kwargs,
                        heartbeat_interval=heartbeat_interval,
                        grace_period=grace_period,
                        **{_STALE_CALLBACK_KWARG: callback},
                    )
                    break
                except (
                    sqlalchemy.exc.IntegrityError,
                    sqlalchemy.exc.ProgrammingError,
                    sqlalchemy.exc.OperationalError,
                ) as exc:
                    # workers starting together on a fresh database race to create the tables
                    racing = not isinstance(exc, sqlalchemy.exc.OperationalError) or any(
                        text in str(exc) for text in ("already exists", "database is locked")
                    )
                    if attempt == 2 or not racing:
                        raise
                    time.sleep(0.5 + attempt)
    except ModuleNotFoundError as exc:
        extra = ' (pip install -e ".[postgres]")' if backend == "postgresql" else ""
        raise TuneError(f"storage '{shown}' needs the database driver '{exc.name}'{extra}") from None
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as exc:
        reason = _scrub(_first_line(getattr(exc, "orig", None) or exc), parsed.password)
        raise TuneError(f"cannot open storage '{shown}': {reason}") from None
    kind = "sqlite" if backend == "sqlite" else "rdb"
    return ResolvedStorage(rdb, shown, kind, heartbeat_interval, grace_period, url=url)


# Optuna >= 4.9 names these RetryHeartbeatStaleTrialCallback / heartbeat_stale_trial_callback; older
# releases RetryFailedTrialCallback / failed_trial_callback (deprecated aliases since 4.9).
_STALE_CALLBACK_KWARG = (
    "heartbeat_stale_trial_callback"
    if "heartbeat_stale_trial_callback" in inspect.signature(optuna.storages.RDBStorage).parameters
    else "failed_trial_callback"
)


def _retry_callback(max_retry: int | None) -> Any:
    cls = (
        getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
        or optuna.storages.RetryFailedTrialCallback
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return cls(max_retry=max_retry)


def _first_line(exc: BaseException | object) -> str:
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__


def _scrub(text: str, password: str | None) -> str:
    return text.replace(password, "***") if password else text


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

    def objective_specs(self) -> list[ObjectiveSpec]:
        return resolve_objectives(self.metric, self.objectives)

    def replace(self, **changes: Any) -> TuneSettings:
        return dataclasses.replace(self, **changes)


def default_study_name(settings: TuneSettings, space: SearchSpace) -> str:
    keys = "+".join(o.key for o in settings.objective_specs())
    return f"{space.fusion}__{space.head}__{keys}"


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
    except TypeError as exc:
        raise TuneError(f"[pruner] options {options} do not fit the {name} pruner: {exc}") from None
    raise TuneError(f"unknown pruner '{name}'; valid pruners: median, hyperband, none")


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
            f"cannot create or load study '{name}' in {storage.display}: {_first_line(exc)}"
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
            raise TuneError(
                f"study '{name}' in {storage.display} was created for other settings ({details}). Its trials "
                f"would not be comparable with new ones; use another --study name (e.g. --study {name}-2) "
                "or the study's own settings"
            )
    return study


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def study_identity(settings: TuneSettings, space: SearchSpace) -> dict[str, Any]:
    """What defines a trial's objective: data, budget, metric(s), fixed hyperparameters, search space.

    Two trials of one study must be comparable, so resuming a study with any of these changed is
    refused (:func:`open_study`)."""
    from fusionzoo.train.config import TRAINING_SEMANTICS, RunConfig
    from fusionzoo.tune.space import TRAIN_FIELD_OF, describe_distribution

    base = RunConfig.from_dict({**settings.base_config, "fusion": space.fusion, "head": space.head})
    searched = {TRAIN_FIELD_OF.get(p.name, p.name) for p in space.searched() if p.component == "train"}
    fixed = {k: v for k, v in base.identity().items() if k not in searched and k not in ("fusion", "head")}
    return {
        "objectives": [o.key for o in settings.objective_specs()],
        "fusion": space.fusion,
        "head": space.head,
        "data": settings.data_fingerprint,
        "epochs": base.epochs,
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


def counts_toward_budget(trial: FrozenTrial) -> bool:
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING):
        return True
    return trial.state == TrialState.FAIL and trial.user_attrs.get(STATUS_ATTR) in ("failed", "diverged")


@dataclass
class BudgetCounts:
    counted: int = 0
    finished: int = 0  # COMPLETE + PRUNED + objective failures
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0
    stale: int = 0  # failed by the heartbeat mechanism (retried or given up)
    overflow: int = 0


def budget_counts(trials: Sequence[FrozenTrial]) -> BudgetCounts:
    out = BudgetCounts()
    for t in trials:
        if counts_toward_budget(t):
            out.counted += 1
        if t.state == TrialState.COMPLETE:
            out.complete += 1
        elif t.state == TrialState.PRUNED:
            out.pruned += 1
        elif t.state == TrialState.RUNNING:
            out.running += 1
        elif t.state == TrialState.WAITING:
            out.waiting += 1
        elif t.state == TrialState.FAIL:
            status = t.user_attrs.get(STATUS_ATTR)
            if status in ("failed", "diverged"):
                out.failed += 1
            elif status == "overflow":
                out.overflow += 1
            else:
                out.stale += 1
    out.finished = out.complete + out.pruned + out.failed
    return out


def claim_slot(study: optuna.Study, trial_number: int, target: int) -> bool:
    """Whether trial ``trial_number`` is within the first ``target`` budget-counting trials."""
    before = sum(
        1 for t in study.get_trials(deepcopy=False) if t.number < trial_number and counts_toward_budget(t)
    )
    return before < target


# -------------------------------------------------------------------------------------------- objective
class Objective:
    """Suggest a config, train it, report each epoch for pruning, store config+metrics as user attrs."""

    def __init__(
        self,
        settings: TuneSettings,
        space: SearchSpace,
        data: Any,
        study: optuna.Study,
        *,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        from fusionzoo.train.config import RunConfig

        self.settings = settings
        self.space = space
        self.data = data
        self.study = study
        self.objectives = settings.objective_specs()
        self.multi = len(self.objectives) > 1
        self.prune_key = (
            self.objectives[0].key if not self.multi and self.objectives[0].is_validation else None
        )
        base = dict(settings.base_config)
        base.setdefault("fusion", space.fusion)
        base["fusion"], base["head"] = space.fusion, space.head
        base.setdefault("seed", settings.seed)
        primary = self.objectives[0].key[4:] if self.objectives[0].is_validation else ""
        if primary in ("macro_f1", "accuracy"):  # best epoch = the epoch with the best tuned metric
            base["metric"] = primary
        self.base = RunConfig.from_dict(base)
        self.progress = progress
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        from fusionzoo.train.trainer import train_run

        trial.set_user_attr("worker", self.worker)
        if not claim_slot(self.study, trial.number, self.settings.trials):
            trial.set_user_attr(STATUS_ATTR, "overflow")
            _OVERFLOW_LOG_FILTER.numbers.add(trial.number)
            self.study.stop()
            raise BudgetExhausted(
                f"trial {trial.number}: the study already has {self.settings.trials} trials"
            )
        try:
            suggestion = self.space.suggest(trial)
            config = self.space.run_config(self.base, suggestion)
        except Exception as exc:
            self._fail(trial, "failed", exc)
            raise
        trial.set_user_attr("config", config.to_dict())
        trial.set_user_attr("config_hash", config.config_hash())
        if suggestion.fixed:
            trial.set_user_attr("fixed_params", suggestion.fixed)

        def on_epoch(epoch: int, val_metrics: dict[str, float]) -> None:
            if self.prune_key is None:
                return
            value = val_metrics.get(self.prune_key[4:])
            if value is None or math.isnan(value):
                return
            trial.report(float(value), epoch)
            if epoch < config.epochs and trial.should_prune():  # a finished run is never pruned
                trial.set_user_attr(STATUS_ATTR, "pruned")
                trial.set_user_attr("pruned_at_epoch", epoch)
                trial.set_user_attr("metrics", {f"val_{k}": float(v) for k, v in val_metrics.items()})
                raise optuna.TrialPruned(f"pruned at epoch {epoch} ({self.prune_key}={value:.4f})")

        progress = None
        if self.progress is not None:
            number = trial.number

            def progress(event: dict[str, Any]) -> None:
                self.progress({**event, "trial": number})

        try:
            result = train_run(config, self.data, on_epoch=on_epoch, progress=progress)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            self._fail(trial, "failed", exc)
            raise
        metrics = self._metrics(result, config)
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("best_epoch", int(result.best_epoch))
        trial.set_user_attr("epochs_run", int(result.epochs_run))
        if result.status != "ok":
            trial.set_user_attr(STATUS_ATTR, "diverged")
            trial.set_user_attr("error", result.error)
            raise TrialDiverged(result.error or "the training loss became NaN/inf")
        values = []
        for objective in self.objectives:
            value = metrics.get(objective.key)
            if value is None or math.isnan(value):
                valid = ", ".join(sorted(k for k in metrics if not k.startswith("test_")))
                exc = TuneError(f"metric '{objective.key}' is not available for this run; it has: {valid}")
                self._fail(trial, "failed", exc)
                raise exc
            values.append(float(value))
        trial.set_user_attr(STATUS_ATTR, "complete")
        return values if self.multi else values[0]

    def _fail(self, trial: optuna.Trial, status: str, exc: BaseException) -> None:
        trial.set_user_attr(STATUS_ATTR, status)
        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:2000])
        trial.set_user_attr("traceback", "".join(traceback.format_exception(exc))[-4000:])

    def _metrics(self, result: Any, config: Any) -> dict[str, float]:
        metrics: dict[str, float] = {f"val_{k}": float(v) for k, v in result.val_metrics.items()}
        metrics.update({f"test_{k}": float(v) for k, v in result.metrics.items()})
        metrics["params"] = float(result.params)
        metrics["train_time"] = float(result.train_time)
        if any(o.key == "latency" for o in self.objectives) and result.status == "ok":
            metrics["latency"] = measure_latency(config, self.data)
        return {k: v for k, v in metrics.items() if not (isinstance(v, float) and math.isinf(v))}


def measure_latency(config: Any, data: Any, batch_size: int = 64, repeats: int = 5) -> float:
    """Inference latency of ``config``'s model in ms per sample: median of ``repeats`` timed forward
    passes over one validation batch, after a warm-up pass (an untrained model runs as fast as a
    trained one, so a fresh model is timed)."""
    import torch

    from fusionzoo.train.model import FusionModel
    from fusionzoo.train.trainer import resolve_device

    device = resolve_device(config.device)
    model = FusionModel.for_data(config, data).to(device)
    model.eval()
    split = "val" if data.size("val") else "train"
    n = min(batch_size, data.size(split))
    batch = data.batch(split, torch.arange(n))
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    timings = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            start = time.perf_counter()
            model.forward_batch(batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i:  # the first pass warms up
                timings.append(time.perf_counter() - start)
    timings.sort()
    return 1000.0 * timings[len(timings) // 2] / max(1, n)


# ----------------------------------------------------------------------------------------------- worker
@dataclass
class WorkerReport:
    """What one worker did, and the study's budget afterwards."""

    study_name: str
    storage: str
    ran: int = 0
    counts: BudgetCounts = field(default_factory=BudgetCounts)
    stopped_by_timeout: bool = False


def _factory_data(settings: TuneSettings) -> Any:
    module_name, _, attr = str(settings.data_factory).partition(":")
    if not attr:
        raise TuneError(f"data factory '{settings.data_factory}' must look like 'module:function'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise TuneError(f"data factory '{settings.data_factory}' cannot be imported: {exc}") from None
    return factory()


_INPUTS: dict[str, Any] = {}  # resolved inputs per data options, once per process


def _inputs(settings: TuneSettings) -> Any:
    from fusionzoo.prepare import DataOptions, resolve_inputs

    key = repr(sorted(settings.data_options.items()))
    if key not in _INPUTS:
        _INPUTS[key] = resolve_inputs(DataOptions(**settings.data_options))
    return _INPUTS[key]


def resolve_data(settings: TuneSettings) -> tuple[str, Any]:
    """(data fingerprint, the data when it is already loaded) without encoding anything: a
    ``data_factory``'s data, or the dataset loaded and its encoders built (``fusionzoo.prepare``)."""
    if settings.data_factory:
        data = _factory_data(settings)
        return str(getattr(data, "fingerprint", "") or settings.data_factory), data
    return _inputs(settings).fingerprint, None


def load_training_data(settings: TuneSettings, console: Any = None) -> Any:
    """The training data, once per process: ``data_factory`` or the shared feature cache (filled on
    first use, so trials and workers never re-encode)."""
    if settings.data_factory:
        return _factory_data(settings)
    from fusionzoo.prepare import materialise

    return materialise(_inputs(settings), console=console, progress=console is not None)


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


def run_worker(
    settings: TuneSettings,
    *,
    data: Any = None,
    storage: ResolvedStorage | None = None,
    on_trial: Callable[[optuna.Study, FrozenTrial], None] | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    poll_interval: float | None = None,
) -> WorkerReport:
    """Run trials on the study until its budget (``settings.trials``) is taken or the timeout hits.

    After its last trial a worker on a heartbeat storage waits while other workers' trials are
    RUNNING: a dead worker's trial turns stale after the grace period, is failed and re-queued, and
    this worker runs the retry, so the study never ends with a trial stuck in RUNNING or WAITING.
    """
    started = time.monotonic()
    optimize_logger = logging.getLogger("optuna.study._optimize")
    if _OVERFLOW_LOG_FILTER not in optimize_logger.filters:
        optimize_logger.addFilter(_OVERFLOW_LOG_FILTER)
    for target in settings.plugins:
        registry.load_plugin(target)
    space = build_settings_space(settings)
    storage = storage or resolve_storage(
        settings.storage,
        settings.runs_dir,
        heartbeat_interval=settings.heartbeat_interval,
        grace_period=settings.grace_period,
        max_retry=settings.max_retry,
    )
    if not settings.data_fingerprint and data is None:
        fingerprint, data = resolve_data(settings)
        settings = settings.replace(data_fingerprint=fingerprint)
    objectives = settings.objective_specs()
    multi = len(objectives) > 1
    epochs = int(settings.base_config.get("epochs", 10))
    pruner = make_pruner(settings.pruner, settings.pruner_options, epochs, multi)
    study = open_study(settings, storage, space, pruner=pruner)
    existing = len(study.get_trials(deepcopy=False))
    study.sampler = make_sampler(
        settings.sampler, sampler_seed(settings.seed, settings.worker_index, existing)
    )
    report = WorkerReport(study.study_name, storage.display)
    target = settings.trials

    def remaining_time() -> float | None:
        if settings.timeout is None:
            return None
        return settings.timeout - (time.monotonic() - started)

    def work_left() -> bool:
        counts = budget_counts(study.get_trials(deepcopy=False))
        return counts.counted < target or counts.waiting > 0

    def after_trial(study_: optuna.Study, trial: FrozenTrial) -> None:
        if trial.user_attrs.get(STATUS_ATTR) != "overflow":
            report.ran += 1
        if on_trial is not None:
            on_trial(study_, trial)
        if not work_left():
            study_.stop()

    objective: Objective | None = None
    interval = storage.heartbeat_interval or 1
    poll = poll_interval or min(5.0, max(0.5, interval / 2))
    # a RUNNING trial seen for longer than this while its heartbeat stays fresh belongs to a live worker
    patience = (storage.grace_period or 2 * interval) + 2 * interval + poll
    first_seen: dict[int, float] = {}
    while True:
        _reclaim_dead_trials(study, storage, settings.max_retry)
        left = remaining_time()
        if left is not None and left <= 0:
            report.stopped_by_timeout = True
            break
        if work_left():
            if data is None:
                data = load_training_data(settings)
            if objective is None:
                objective = Objective(settings, space, data, study, progress=progress)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.optimize(
                    objective,
                    timeout=left,
                    catch=(Exception,),
                    callbacks=[after_trial],
                    gc_after_trial=False,
                )
            continue
        if not storage.heartbeat:
            break
        # drain: wait while other workers' trials are RUNNING; a dead worker's trial goes stale after
        # the grace period, is failed and re-queued (WAITING), and the loop above runs the retry
        running = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
        now = time.monotonic()
        for number in running:
            first_seen.setdefault(number, now)
        if not running or all(now - first_seen[n] > patience for n in running):
            break
        time.sleep(poll if left is None else max(0.0, min(poll, left)))
    report.counts = budget_counts(study.get_trials(deepcopy=False))
    return report


def _reclaim_dead_trials(study: optuna.Study, storage: ResolvedStorage, max_retry: int | None) -> None:
    """Fail and re-queue the RUNNING trials of dead workers.

    Heartbeat storages: ``fail_stale_trials`` (heartbeat older than the grace period). Storages
    without heartbeats (journal): RUNNING trials whose ``worker`` attr names this host and a process
    that no longer exists (the journal file is local, so its workers are on this host).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if storage.heartbeat:
            optuna.storages.fail_stale_trials(study)
            return
        if storage.kind == "memory":
            return
        host = socket.gethostname()
        retry = _retry_callback(max_retry)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker_host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
            if worker_host != host or not pid.isdigit() or _pid_alive(int(pid)):
                continue
            try:
                if study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                    retry(study, copy.deepcopy(study._storage.get_trial(trial._trial_id)))
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # another worker got there first


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------------------- many workers
def _worker_entry(settings: TuneSettings, threads: int) -> None:
    """Entry point of a ``--workers N`` child process (spawned)."""
    import torch

    torch.set_num_threads(max(1, threads))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_worker(settings)


def launch_workers(
    settings: TuneSettings,
    workers: int,
    *,
    poll: Callable[[], None] | None = None,
    poll_interval: float = 1.0,
) -> list[int]:
    """Start ``workers`` spawned processes on one study; return their exit codes.

    ``poll()`` is called every ``poll_interval`` seconds while they run (progress display).
    Each child gets ``worker_index`` 0..N-1 (so the seeded samplers differ) and an equal share of the
    CPU threads. Ctrl-C terminates the children; their RUNNING trials are failed by the heartbeat
    mechanism and retried on the next run.
    """
    if workers < 1:
        raise TuneError(f"--workers must be >= 1, got {workers}")
    context = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    processes = [
        context.Process(
            target=_worker_entry,
            args=(settings.replace(worker_index=i), threads),
            name=f"fusionzoo-tune-worker-{i}",
        )
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        while any(p.is_alive() for p in processes):
            for process in processes:
                process.join(timeout=poll_interval / len(processes))
            if poll is not None:
                poll()
    except BaseException:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=10)
        raise
    return [int(p.exitcode or 0) for p in processes]


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


@contextlib.contextmanager
def quiet_optuna() -> Any:
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)
