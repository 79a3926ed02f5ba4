"""The tuning worker: run trials on a study until its budget is taken; ``--jobs N`` of them as tasks.

:func:`run_worker` is the whole loop for one process and needs no command line: settings in, a
:class:`WorkerReport` out. It opens the study, loads the training data once, runs trials (the
:class:`~fusionzoo.tune.objective.Objective`), reclaims the RUNNING trials of dead workers, and drains:
after its last trial it waits while other workers' trials run, so a dead worker's trial is retried.
:class:`TuneWorkerTask` is one such worker as a launcher task, and :func:`launch_workers` hands N of
them to the launcher of the ``[run]`` settings (the warm process pool, Ray, submitit): Optuna's storage
hands out the trials, so a task is a worker, not a trial.
"""

from __future__ import annotations

import copy
import importlib
import os
import socket
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from fusionzoo import registry
from fusionzoo.io import pid_alive
from fusionzoo.tune import TuneError
from fusionzoo.tune.budget import STATUS_ATTR, BudgetCounts, budget_counts, hide_overflow_failures
from fusionzoo.tune.objective import Objective
from fusionzoo.tune.storage import ResolvedStorage, resolve_storage, retry_callback
from fusionzoo.tune.study import (
    TuneSettings,
    build_settings_space,
    make_pruner,
    make_sampler,
    open_study,
    sampler_seed,
)

__all__ = [
    "TuneWorkerTask",
    "WorkerRecord",
    "WorkerReport",
    "absolute_settings",
    "launch_workers",
    "load_training_data",
    "resolve_data",
    "run_worker",
]


@dataclass
class WorkerReport:
    """What one worker did, and the study's budget afterwards."""

    study_name: str
    storage: str
    ran: int = 0
    counts: BudgetCounts = field(default_factory=BudgetCounts)
    stopped_by_timeout: bool = False
    study: optuna.Study | None = field(default=None, repr=False)  # the study this worker ran on


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
    hide_overflow_failures()
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
    report = WorkerReport(study.study_name, storage.display, study=study)
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

    Every shared storage: RUNNING trials whose ``worker`` attr names this host and a process that no
    longer exists, at once (a killed ``fusionzoo tune`` on SQLite is retried by the rerun, not two
    minutes later). Heartbeat storages also: ``fail_stale_trials`` (heartbeat older than the grace
    period), which covers workers on other hosts.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if storage.kind == "memory":
            return
        _reclaim_dead_local_trials(study, max_retry)
        if storage.heartbeat:
            optuna.storages.fail_stale_trials(study)


def _reclaim_dead_local_trials(study: optuna.Study, max_retry: int | None) -> None:
    """Fail and re-queue the RUNNING trials of processes on this host that no longer exist."""
    host = socket.gethostname()
    retry = retry_callback(max_retry)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker_host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
        if worker_host != host or not pid.isdigit() or pid_alive(int(pid)):
            continue
        try:
            if study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                retry(study, copy.deepcopy(study._storage.get_trial(trial._trial_id)))
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker got there first




# ---------------------------------------------------------------------------------------- many workers
def _absolute_url(url: str | None) -> str | None:
    if not url:
        return url
    if url.startswith("journal:"):
        return "journal:" + str(Path(url.removeprefix("journal:")).expanduser().resolve())
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(url.removeprefix("sqlite:///")).expanduser().resolve())
    return url


def absolute_settings(settings: TuneSettings) -> TuneSettings:
    """``settings`` with its runs directory, storage file and data directory as absolute paths."""
    data = dict(settings.data_options)
    for key in ("data_dir", "cache_dir"):
        if data.get(key):
            data[key] = str(Path(data[key]).expanduser().resolve())
    return settings.replace(
        runs_dir=str(Path(settings.runs_dir).expanduser().resolve()),
        storage=_absolute_url(settings.storage),
        data_options=data,
        plugins=[str(Path(p).resolve()) if os.path.exists(p) else p for p in settings.plugins],
    )


@dataclass
class WorkerRecord:
    """What one tuning worker task did: ``status`` ok or failed (with the error), trials it ran."""

    index: int
    status: str
    ran: int = 0
    stopped_by_timeout: bool = False
    error: str = ""


@dataclass
class TuneWorkerTask:
    """One tuning worker (``settings.worker_index``) as a launcher task: :func:`run_worker` until the
    study's budget is taken. It needs no input from the driver (it opens the study and the data
    itself) and writes no folder (the storage holds everything); a worker that dies is retried by the
    launcher, and its RUNNING trial is failed and re-queued by the storage (heartbeats, dead pids)."""

    settings: TuneSettings
    input: str | None = None
    checkpoint_dir: Path | None = None
    whole_gpu: bool = False

    @property
    def key(self) -> str:
        return f"tune-worker-{self.settings.worker_index}"

    @property
    def label(self) -> str:
        return f"tune worker {self.settings.worker_index}"

    def execute(self, context: Any) -> WorkerRecord:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        index = self.settings.worker_index
        try:
            report = run_worker(self.settings)
        except Exception as exc:  # the command says which workers failed; the traceback goes above it
            traceback.print_exc(file=sys.stderr)
            return WorkerRecord(index, "failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
        return WorkerRecord(index, "ok", report.ran, report.stopped_by_timeout)

    def failed(self, error: str) -> WorkerRecord:
        return WorkerRecord(self.settings.worker_index, "failed", error=error)

    def discard(self) -> None:
        """Nothing to remove: an interrupted trial is failed and retried through the storage."""

    def absolute(self) -> TuneWorkerTask:
        return replace(self, settings=absolute_settings(self.settings))

    def with_checkpoint(self, folder: Path | None) -> TuneWorkerTask:
        return self


class _WorkersDriver:
    """Collects the workers' records and refreshes the display while they run."""

    def __init__(self, poll: Callable[[], None] | None, poll_interval: float) -> None:
        self.records: dict[int, WorkerRecord] = {}
        self.poll, self.interval, self.last = poll, poll_interval, 0.0

    def progress(self, task: Any, event: dict[str, Any]) -> None:
        pass

    def finished(self, record: WorkerRecord) -> None:
        self.records[record.index] = record

    def idle(self) -> None:
        now = time.monotonic()
        if self.poll is not None and now - self.last >= self.interval:
            self.last = now
            self.poll()


def launch_workers(
    settings: TuneSettings,
    workers: int,
    *,
    launcher: Any = None,
    poll: Callable[[], None] | None = None,
    poll_interval: float = 1.0,
) -> list[int]:
    """Run ``workers`` tuning workers on one study through ``launcher`` (default: the warm process
    pool, one worker per task at once); return an exit code per worker (0: finished).

    ``poll()`` is called every ``poll_interval`` seconds while they run (progress display). Each worker
    gets ``worker_index`` 0..N-1 (so the seeded samplers differ) and trains on the launcher's threads
    (``--threads``, as every bench run). Ctrl-C stops the workers; their RUNNING trials are failed and
    retried on the next run.
    """
    if workers < 1:
        raise TuneError(f"--jobs must be >= 1, got {workers}")
    if launcher is None:
        from fusionzoo.launch.pool import PoolLauncher

        launcher = PoolLauncher(jobs=workers)
    tasks = [TuneWorkerTask(settings.replace(worker_index=i)) for i in range(workers)]
    driver = _WorkersDriver(poll, poll_interval)
    launcher.run(tasks, lambda key: None, driver)
    return [0 if i in driver.records and driver.records[i].status == "ok" else 1 for i in range(workers)]
