"""The benchmark driver: run the grid's unfinished runs through a launcher, record each as it ends.

:func:`run_grid` skips runs already finished in the runs directory (status ok or diverged, same
``run_id``: same data fingerprint, configuration, semantics and seed), redoes failed runs and runs
that never finished (killed mid-way: no row was written), and records every run atomically as soon as
it ends, whatever launcher executed it. A run that raises is recorded ``failed`` with the error and a
traceback summary, and the grid goes on. ``KeyboardInterrupt`` discards the current run and propagates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fusionzoo import registry
from fusionzoo.bench.seed_groups import group_seed_tasks, stacks_by_default
from fusionzoo.launch.base import Launcher, RunRecord, RunTask, execute_run, result_row
from fusionzoo.results.store import ResultsStore

__all__ = ["GridOutcome", "execute_run", "result_row", "run_grid"]

DataProvider = Callable[[str], Any]


@dataclass
class GridOutcome:
    """What :func:`run_grid` did."""

    specs: list[Any]
    skipped: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # run label -> error line
    seconds: float = 0.0


class _RunProgress:
    """Adapts a run's progress events to a transient rich task."""

    def __init__(self, progress: Any, label: str) -> None:
        self.progress, self.label = progress, label
        self.task = None
        self.status = ""

    def __call__(self, event: dict[str, Any]) -> None:
        if self.progress is None:
            return
        epochs, steps = int(event["epochs"]), max(1, int(event["steps"]))
        if self.task is None:
            self.task = self.progress.add_task(f"  {self.label}", total=epochs * steps, unit="steps")
        done = (int(event["epoch"]) - 1) * steps + int(event["step"]) if event["event"] != "start" else 0
        if event["event"] == "epoch":
            val = event.get("val", float("nan"))
            name = "acc" if event.get("metric") == "accuracy" else event.get("metric", "val")
            self.status = f" · epoch {event['epoch']}/{epochs} loss {event['loss']:.3f} val {name} {val:.3f}"
        self.progress.update(self.task, completed=done, description=f"  {self.label}{self.status}")

    def close(self) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None


class _Driver:
    """Records finished runs, keeps the outcome, drives the progress display."""

    def __init__(
        self,
        store: ResultsStore,
        outcome: GridOutcome,
        progress: Any,
        say: Callable[..., None],
        on_record: Callable[[RunRecord], None] | None = None,
    ):
        self.store, self.outcome, self.rich, self.say = store, outcome, progress, say
        self.on_record = on_record
        self.bars: dict[str, _RunProgress] = {}
        self.grid_task = None

    def progress(self, task: RunTask, event: dict[str, Any]) -> None:
        run_id = task.spec.run_id
        if run_id not in self.bars:
            self.bars[run_id] = _RunProgress(self.rich, getattr(task, "label", task.spec.label))
        self.bars[run_id](event)

    def finished(self, record: RunRecord) -> None:
        """Record ``record`` and the records of the seeds trained with it (``record.group``)."""
        for one in [record, *record.group]:
            self._finished(one)

    def _finished(self, record: RunRecord) -> None:
        spec = record.spec
        bar = self.bars.pop(spec.run_id, None)
        if bar is not None:
            bar.close()
        ok = record.status != "failed"
        self.store.record(
            record.row,
            history=record.history,
            predictions=record.predictions if ok else None,
            labels=record.labels if ok else None,
            diagnostics=record.diagnostics if ok else None,
        )
        if self.on_record is not None:  # e.g. experiment tracking, after the run is safely recorded
            self.on_record(record)
        self.outcome.ran.append(spec.run_id)
        if record.status == "failed":
            self.outcome.failed.append(spec.run_id)
            self.outcome.errors[spec.label] = record.row["error"]
            self.say(f"[red]failed[/red] {spec.label}: {record.row['error']}")
        elif record.status == "diverged":
            self.outcome.diverged.append(spec.run_id)
            self.say(f"[yellow]diverged[/yellow] {spec.label}: {record.row['error']}")
        else:
            row = record.row
            self.say(
                f"[green]done[/green] {spec.label}: test acc {row.get('test_accuracy', float('nan')):.4f}, "
                f"macro-F1 {row.get('test_macro_f1', float('nan')):.4f} ({row['train_time']:.1f} s)"
            )
        if self.grid_task is not None:
            self.rich.advance(self.grid_task)

    def note(self, message: str) -> None:
        """A line from the launcher (how it runs the grid, a retried run), above the bars."""
        self.say(message)

    def discard_running(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


def run_grid(
    specs: list[Any],
    store: ResultsStore,
    data_for: DataProvider,
    *,
    launcher: Launcher | None = None,
    progress: Any = None,
    console: Any = None,
    keep_checkpoints: bool = True,
    on_record: Callable[[RunRecord], None] | None = None,
    batch_seeds: bool | None = None,
) -> GridOutcome:
    """Run every spec not yet finished in ``store``; see the module docstring. ``on_record(record)``
    is called for each run right after it is recorded. ``batch_seeds``: the unfinished seeds of one
    configuration train as one stacked model where the launcher takes such groups
    (:mod:`fusionzoo.bench.seed_groups`); ``None``: when they train on CUDA."""
    started = time.perf_counter()
    outcome = GridOutcome(specs=specs)
    finished = store.finished_ids()
    todo = [s for s in specs if s.run_id not in finished]
    outcome.skipped = [s.run_id for s in specs if s.run_id in finished]
    say = console.print if console is not None else (lambda *a, **k: None)
    driver = _Driver(store, outcome, progress, say, on_record)
    if progress is not None:
        driver.grid_task = progress.add_task("grid", total=len(todo))
    tasks = [RunTask(s, store.checkpoint_dir(s.run_id) if keep_checkpoints else None) for s in todo]
    launcher = launcher or registry.create("launcher", "local")
    if batch_seeds is None:
        batch_seeds = stacks_by_default(todo)
    if batch_seeds and getattr(launcher, "batches_seeds", False):
        tasks = group_seed_tasks(tasks)
    try:
        launcher.run(tasks, data_for, driver)
    finally:
        driver.discard_running()
        outcome.seconds = time.perf_counter() - started
    return outcome
