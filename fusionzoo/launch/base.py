"""Tasks and launchers: every unit of work is a task that executes itself; a launcher only schedules.

A **task** (:class:`Task`) is one unit of work of any command: a training run or a probe of the bench
grid, an evaluation task of ``fusionzoo eval`` (:class:`RunTask`, whose spec executes itself), a tuning
worker of ``fusionzoo tune`` (:class:`fusionzoo.tune.worker.TuneWorkerTask`), a shard of ``fusionzoo
encode`` (:class:`fusionzoo.encoders.sharded.ShardTask`). It is a picklable object with one method,
``execute(context) -> record``, a pure function of its inputs: the task itself, the data it names
(``task.input``, a key the driver's ``inputs_for`` resolves, opened once per worker process) and the
folder it writes (``task.checkpoint_dir``).

A **launcher** (:class:`Launcher`) decides only *where* and *how many at once*: this process
(``local``), a warm process pool (``pool``), a Ray cluster (``ray``), SLURM (``submitit``), all ranks of
``torchrun`` (``ddp``). It knows no task kind: it calls ``task.execute(context)`` (or, when the worker
died, ``task.failed(message)``) and hands each record to the driver (``driver.finished(record)``) as the
task ends, in any order. The driver (:func:`fusionzoo.bench.runner.run_grid`, the eval runner, the tune
and encode commands) owns every table, resume and failure isolation.
"""

from __future__ import annotations

import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from fusionzoo.io import DISK_FULL_ERRNOS, disk_errors
from fusionzoo.registry import REGISTRIES

__all__ = [
    "Driver",
    "Launcher",
    "RunRecord",
    "RunTask",
    "Task",
    "TaskContext",
    "as_records",
    "execute_run",
    "register_launcher",
    "result_row",
    "run_record",
    "traceback_summary",
]


@dataclass
class TaskContext:
    """What a launcher gives a task: its opened input, a progress callback, the device to run on."""

    data: Any = None
    progress: Callable[[dict[str, Any]], None] | None = None
    device: str = "auto"


@runtime_checkable
class Task(Protocol):
    """One unit of work (see the module docstring). ``key`` is unique among the tasks of one launch;
    ``input`` names the data it needs (``None``: none); ``checkpoint_dir`` the folder it writes
    (``None``: none); ``whole_gpu``: it wants a GPU of its own on a GPU cluster."""

    key: str
    label: str
    input: str | None
    checkpoint_dir: Path | None
    whole_gpu: bool

    def execute(self, context: TaskContext) -> Any:
        """Do the work; returns a record (or a list of records) for the driver."""

    def failed(self, error: str) -> Any:
        """The record of this task when it could not run (its worker process or node died)."""

    def discard(self) -> None:
        """Remove what an interrupted execution left behind (nothing of it is recorded)."""

    def absolute(self) -> Task:
        """The same task with every path absolute (it runs in another folder or on another machine)."""

    def with_checkpoint(self, folder: Path | None) -> Task:
        """The same task writing into ``folder`` (a temporary folder whose files travel back)."""


def as_records(outcome: Any) -> list[Any]:
    """The records of one task's ``execute``: a record, or a list of them (a task of several runs)."""
    return list(outcome) if isinstance(outcome, list | tuple) else [outcome]


def register_launcher(obj: Any = None, *, name: str | None = None) -> Any:
    """Register a launcher class (bare or ``@register_launcher("name")``)."""
    return REGISTRIES["launcher"].register(obj, name=name)


@dataclass
class RunTask:
    """A task of the results table: a spec that executes itself (``spec.execute(data, checkpoint_dir,
    progress) -> RunRecord``: a training run, a probe, an evaluation task) and where its checkpoint goes
    (``None``: keep none). An exception of the spec becomes a ``failed`` record: the grid goes on."""

    spec: Any  # fusionzoo.experiment.RunSpec, fusionzoo.evaluation.tasks.EvalSpec, ...
    checkpoint_dir: Path | None
    whole_gpu: bool = False

    def __post_init__(self) -> None:
        config = getattr(self.spec, "config", None)
        if getattr(config, "mode", "") == "finetune":  # the encoders train too: a GPU of its own
            self.whole_gpu = True

    @property
    def key(self) -> str:
        return str(self.spec.run_id)

    @property
    def label(self) -> str:
        return str(self.spec.label)

    @property
    def input(self) -> str | None:
        return self.spec.dataset

    def input_files(self) -> list[str]:
        """Files the task reads besides its input (an evaluation task's checkpoint)."""
        return list(getattr(self.spec, "input_files", list)())

    def portable(self) -> RunTask:
        """The task with its file inputs inside it (for machines that do not share storage)."""
        return replace(self, spec=self.spec.portable()) if hasattr(self.spec, "portable") else self

    def execute(self, context: TaskContext) -> RunRecord:
        return _execute_spec(self, context)

    def failed(self, error: str) -> RunRecord:
        return RunRecord(self.spec, result_row(self.spec, None, error=error))

    def discard(self) -> None:
        if self.checkpoint_dir is not None:
            shutil.rmtree(Path(self.checkpoint_dir), ignore_errors=True)

    def absolute(self) -> RunTask:
        folder = Path(self.checkpoint_dir).resolve() if self.checkpoint_dir is not None else None
        return replace(self, checkpoint_dir=folder)

    def with_checkpoint(self, folder: Path | None) -> RunTask:
        return replace(self, checkpoint_dir=folder)


@dataclass
class RunRecord:
    """What one run produced: the results row, its history and its test predictions."""

    spec: Any
    row: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    predictions: np.ndarray | None = None
    labels: np.ndarray | None = None
    seconds: float = 0.0
    diagnostics: list[dict[str, Any]] = field(default_factory=list)  # summaries of the model's extras
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # rows of other tables (eval)
    group: list[RunRecord] = field(default_factory=list)  # the other seeds trained with it (batched seeds)

    @property
    def status(self) -> str:
        return str(self.row["status"])

    @property
    def checkpoint(self) -> str:
        return str(self.row.get("checkpoint") or "")

    @checkpoint.setter
    def checkpoint(self, path: str) -> None:
        self.row["checkpoint"] = path


class Driver(Protocol):
    """What a launcher may call back: progress events of a task, and its record when it ends.

    Optional: ``note(message)`` (a line about how the tasks run), ``idle()`` (called about every
    0.1-1 s while tasks run, e.g. to refresh a display)."""

    def progress(self, task: Any, event: dict[str, Any]) -> None: ...

    def finished(self, record: Any) -> None: ...


class Launcher:
    """Base class: :meth:`run` executes every task and reports each record to the driver.

    ``inputs_for(task.input)`` gives the data a task names (called once per distinct input, in the
    driver); ``run`` returns when every task is recorded, and on an exception (Ctrl-C) leaves nothing
    of the unfinished tasks (``task.discard()``)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    batches_seeds: ClassVar[bool] = False  # takes seed groups (fusionzoo.bench.seed_groups) as one task

    def run(self, tasks: list[Any], inputs_for: Callable[[str], Any], driver: Driver) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement run()")  # pragma: no cover


def inputs_of(tasks: list[Any], inputs_for: Callable[[str], Any]) -> dict[str, Any]:
    """``{input key: data}`` of the tasks' distinct inputs, in order of first use."""
    keys = dict.fromkeys(t.input for t in tasks if t.input is not None)
    return {key: inputs_for(key) for key in keys}


def idle(driver: Any) -> None:
    """Let the driver refresh what it shows while tasks run (its optional ``idle()``)."""
    hook = getattr(driver, "idle", None)
    if hook is not None:
        hook()


def traceback_summary(exc: BaseException, frames: int = 6) -> str:
    """The last ``frames`` frames and the exception line, compact enough for a table cell."""
    summary = traceback.extract_tb(exc.__traceback__)[-frames:]
    lines = [f"{f.filename}:{f.lineno} in {f.name}: {(f.line or '').strip()}" for f in summary]
    lines.append(f"{type(exc).__name__}: {exc}")
    return "\n".join(lines)


def result_row(
    spec: Any, result: Any | None, error: str = "", tb: str = "", elapsed: float = float("nan")
) -> dict[str, Any]:
    """The results-table row of a finished (``result``) or failed (``error``) run."""
    row: dict[str, Any] = {
        **spec.identity_columns(),
        "kind": getattr(spec, "kind", "train"),
        "mode": spec.config.mode,
        "config": spec.config.to_json(),
        "status": "failed" if result is None else result.status,
        "error": error if result is None else result.error,
        "traceback": tb,
        "train_time": elapsed if result is None else float(result.train_time),
        "params": 0 if result is None else int(result.params),
        "best_epoch": 0 if result is None else int(result.best_epoch),
        "epochs_run": 0 if result is None else int(result.epochs_run),
        "stopped_early": False if result is None else bool(result.stopped_early),
        "steps": 0 if result is None else int(result.steps),
        "checkpoint": "" if result is None else result.checkpoint,
        "seed_batch": 1,  # runs trained together as one stacked model (fusionzoo.bench.seed_groups)
        "execution": "single",
    }
    if result is not None:
        row.update({f"test_{k}": float(v) for k, v in result.metrics.items()})
        row.update({f"val_{k}": float(v) for k, v in result.val_metrics.items()})
    return row


def execute_run(
    task: Any, data: Any, progress: Callable[[dict[str, Any]], None] | None = None, device: str = "auto"
) -> Any:
    """``task.execute`` on ``data`` in this process (what the local launcher does for each task)."""
    return task.execute(TaskContext(data, progress, device))


def _execute_spec(task: RunTask, context: TaskContext) -> RunRecord:
    """Run ``task.spec.execute``; an exception becomes a ``failed`` record (the grid goes on).

    ``KeyboardInterrupt`` removes the run's partial checkpoint and propagates: nothing of the run is
    recorded, so a rerun redoes it. A full disk is not the run's fault: it stops the grid.
    """
    spec, checkpoint = task.spec, task.checkpoint_dir
    if checkpoint is not None:
        shutil.rmtree(checkpoint, ignore_errors=True)
    started = time.perf_counter()
    try:
        record = spec.execute(context.data, checkpoint, context.progress)
    except KeyboardInterrupt:
        task.discard()
        raise
    except Exception as exc:  # a broken plugin must not stop the grid
        task.discard()
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            with disk_errors(checkpoint or "the run's checkpoint", "a checkpoint"):
                raise
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        elapsed = time.perf_counter() - started
        row = result_row(spec, None, error=message, tb=traceback_summary(exc), elapsed=elapsed)
        return RunRecord(spec, row, seconds=elapsed)
    record.seconds = time.perf_counter() - started if not record.seconds else record.seconds
    return record


def run_record(spec: Any, result: Any) -> RunRecord:
    """The record of a finished training run or probe (a ``TrainResult``)."""
    return RunRecord(
        spec,
        result_row(spec, result),
        history=result.history,
        predictions=result.test_predictions,
        labels=result.test_labels,
        diagnostics=result.diagnostics,
    )
