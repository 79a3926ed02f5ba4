"""The launcher interface and the one function every launcher executes: :func:`execute_run`.

A task is a training run (``spec.kind`` ``"train"`` or ``"probe"``) or an evaluation of a saved
checkpoint (``"eval"``, :mod:`fusionzoo.evaluation.tasks`), so ``fusionzoo eval --jobs N`` and
``--launcher ray`` reuse every launcher as it is.

The driver (:func:`fusionzoo.bench.runner.run_grid`) owns the results table, resume and failure
isolation; a launcher only decides *where* :func:`execute_run` runs (this process, a process pool, a
Ray cluster ...) and calls ``driver.finished(record)`` as each run ends, in any order. A task is a pure
function of its inputs: the run spec, the data (or where to load it) and the checkpoint folder.
"""

from __future__ import annotations

import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from fusionzoo.io import DISK_FULL_ERRNOS, disk_errors
from fusionzoo.registry import REGISTRIES
from fusionzoo.results.identity import check_regime

__all__ = [
    "Driver",
    "Launcher",
    "RunRecord",
    "RunTask",
    "execute_run",
    "register_launcher",
    "result_row",
    "traceback_summary",
]


def register_launcher(obj: Any = None, *, name: str | None = None) -> Any:
    """Register a launcher class (bare or ``@register_launcher("name")``)."""
    return REGISTRIES["launcher"].register(obj, name=name)


@dataclass
class RunTask:
    """One run to execute: its spec and where its checkpoint goes (``None``: keep none)."""

    spec: Any  # fusionzoo.experiment.RunSpec
    checkpoint_dir: Path | None


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


class Driver(Protocol):
    """What a launcher may call back: progress events of a run, and its record when it ends."""

    def progress(self, task: RunTask, event: dict[str, Any]) -> None: ...

    def finished(self, record: RunRecord) -> None: ...


class Launcher:
    """Base class: :meth:`run` executes every task and reports each record to the driver."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    batches_seeds: ClassVar[bool] = False  # takes seed groups (fusionzoo.bench.seed_groups) as one task

    def run(self, tasks: list[RunTask], data_for: Callable[[str], Any], driver: Driver) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement run()")  # pragma: no cover


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
    task: RunTask, data: Any, progress: Callable[[dict[str, Any]], None] | None = None
) -> RunRecord:
    """Train one run and return its record; an exception becomes a ``failed`` record (the grid goes on).

    ``KeyboardInterrupt`` removes the run's partial checkpoint and propagates: nothing of the run is
    recorded, so a rerun redoes it.
    """
    from fusionzoo.train.trainer import train_run

    if getattr(task, "members", None):  # seeds of one configuration: one stacked model
        from fusionzoo.bench.seed_groups import execute_seed_group

        return execute_seed_group(task, data, progress)
    spec, checkpoint = task.spec, task.checkpoint_dir
    if checkpoint is not None:
        shutil.rmtree(checkpoint, ignore_errors=True)
    started = time.perf_counter()
    try:
        kind = getattr(spec, "kind", "train")
        if kind == "eval":  # a saved checkpoint under protocols: fusionzoo.evaluation.tasks
            from fusionzoo.evaluation.tasks import execute_eval

            return execute_eval(spec, data, progress)
        if kind == "probe":
            from fusionzoo.baselines.linear_probe import probe_run

            result = probe_run(spec.config, data, checkpoint_dir=checkpoint)
        else:
            check_regime(spec)  # another world size or precision would be another run: refuse it
            result = train_run(spec.config, data, progress=progress, checkpoint_dir=checkpoint)
    except KeyboardInterrupt:
        if checkpoint is not None:
            shutil.rmtree(checkpoint, ignore_errors=True)
        raise
    except Exception as exc:  # a broken plugin must not stop the grid
        if checkpoint is not None:
            shutil.rmtree(checkpoint, ignore_errors=True)
        if (
            isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS
        ):  # not the run's fault: stop, keep state
            with disk_errors(checkpoint or "the run's checkpoint", "a checkpoint"):
                raise
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        elapsed = time.perf_counter() - started
        row = result_row(spec, None, error=message, tb=traceback_summary(exc), elapsed=elapsed)
        return RunRecord(spec, row, seconds=elapsed)
    return RunRecord(
        spec,
        result_row(spec, result),
        history=result.history,
        predictions=result.test_predictions,
        labels=result.test_labels,
        seconds=time.perf_counter() - started,
        diagnostics=result.diagnostics,
    )
