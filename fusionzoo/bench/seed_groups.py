"""Batched seeds in the grid: the runs of one configuration that differ only in their seed become one
task (:class:`SeedGroupTask`) that trains them as one stacked model (:mod:`fusionzoo.train.batched`).

:func:`group_seed_tasks` groups the unfinished train runs of one ``config_id`` (same dataset, data,
fusion, head, training config, code and regime; DDP runs never), so resume works per seed: a finished
seed is not in the task list, a partly finished group trains only its missing seeds (one missing seed
is a plain run). Launchers that run tasks on this machine (``local``, ``pool``) take groups
(``Launcher.batches_seeds``); cluster launchers get one task per run. ``--batch-seeds`` turns it on,
``--no-batch-seeds`` off; unset, it is on when the runs train on CUDA (:func:`stacks_by_default`).

:func:`execute_seed_group` returns the first member's record with the others' in ``record.group``;
the driver records each as if it had run alone. When the seeds cannot be stacked (finetune mode, a
fusion or head whose ops vmap cannot batch or whose stack does not reproduce its runs: the probe of
:mod:`fusionzoo.train.stacked`) the group runs its members one at a time, and says why in each row.

Each results row says how it trained: ``seed_batch`` (members trained together; 1 = alone) and
``execution`` (``stacked`` or ``single``, with the reason a requested stack was refused). The mode is
not part of the run identity: a member's numbers equal its run alone's up to floating-point
reassociation (``tests/test_batched_seeds.py`` measures it for every registered fusion).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fusionzoo.launch.base import RunRecord, RunTask, TaskContext, execute_run, result_row, traceback_summary

__all__ = ["SeedGroupTask", "execute_seed_group", "group_seed_tasks", "stacks_by_default"]


def stacks_by_default(specs: list[Any]) -> bool:
    """The default of ``--batch-seeds``: on when the runs train on CUDA, where a small model's step is
    bound by kernel launches; off on CPU, where the stacked step measured no faster (docs/scale.md)."""
    from fusionzoo.train.trainer import resolve_device

    devices = {s.config.device for s in specs if getattr(s, "kind", "train") == "train"}
    try:
        return bool(devices) and all(resolve_device(d).type == "cuda" for d in devices)
    except ValueError:  # CUDA named but absent: the runs will say so
        return False


@dataclass
class SeedGroupTask(RunTask):
    """Several runs of one configuration, different seeds; ``spec``/``checkpoint_dir`` are the first's."""

    members: list[RunTask] = field(default_factory=list)

    @property
    def label(self) -> str:
        seeds = ", ".join(str(t.spec.seed) for t in self.members)
        first = self.members[0].spec
        return f"{first.fusion} + {first.head} · seeds {seeds}" + (
            f" · {first.dataset}" if first.dataset != "synth" else ""
        )

    def execute(self, context: TaskContext) -> RunRecord:
        """Train the members as one stack (:func:`execute_seed_group`): the first record carries the
        others in ``group``."""
        return execute_seed_group(self, context.data, context.progress)

    def failed(self, error: str) -> RunRecord:
        """Every member fails with ``error`` (its worker died): one record carrying the others."""
        first, *rest = [member.failed(error) for member in self.members]
        first.group = rest
        return first

    def discard(self) -> None:
        for member in self.members:
            member.discard()

    def absolute(self) -> SeedGroupTask:
        members = [member.absolute() for member in self.members]
        return replace(self, members=members, checkpoint_dir=members[0].checkpoint_dir)

    def with_checkpoint(self, folder: Path | None) -> SeedGroupTask:
        raise NotImplementedError("a seed group runs on the local and pool launchers only (shared storage)")


def group_seed_tasks(tasks: list[RunTask]) -> list[RunTask]:
    """``tasks`` with the train runs of one configuration merged into one :class:`SeedGroupTask`
    each, in the order of their first member (a configuration with one run left stays a plain task)."""
    groups: dict[str, list[RunTask]] = {}
    order: list[Any] = []
    for task in tasks:
        spec = task.spec
        if getattr(spec, "kind", "train") != "train" or getattr(spec, "world", 1) != 1:
            order.append(task)
            continue
        key = spec.config_id
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(task)
    out: list[RunTask] = []
    for item in order:
        if isinstance(item, RunTask):
            out.append(item)
            continue
        members = groups[item]
        if len(members) == 1:
            out.append(members[0])
        else:
            out.append(SeedGroupTask(members[0].spec, members[0].checkpoint_dir, members=members))
    return out


def _single(task: SeedGroupTask, data: Any, progress: Callable | None, reason: str) -> RunRecord:
    """The members one at a time (the plain path), each row saying why they were not stacked."""
    records = [execute_run(member, data, progress) for member in task.members]
    for record in records:
        record.row.update(seed_batch=1, execution=f"single ({reason})")
    first, *rest = records
    first.group = rest
    return first


def execute_seed_group(task: SeedGroupTask, data: Any, progress: Callable | None = None) -> RunRecord:
    """Train the group's members as one stack; see the module docstring."""
    from fusionzoo.results.identity import check_regime
    from fusionzoo.train.batched import SeedStackTrainer, Unbatchable

    members = task.members
    for member in members:
        check_regime(member.spec)
        if member.checkpoint_dir is not None:
            shutil.rmtree(member.checkpoint_dir, ignore_errors=True)
    started = time.perf_counter()
    configs = [m.spec.config for m in members]
    try:
        trainer = SeedStackTrainer(configs, data, [m.checkpoint_dir for m in members], progress)
        results = trainer.fit()
    except Unbatchable as exc:
        return _single(task, data, progress, str(exc))
    except KeyboardInterrupt:
        for member in members:
            if member.checkpoint_dir is not None:
                shutil.rmtree(member.checkpoint_dir, ignore_errors=True)
        raise
    except Exception as exc:  # noqa: BLE001 - the runs alone say what fails (and record it per run)
        return _single(
            task, data, progress, f"the stack failed: {type(exc).__name__}: {exc}".splitlines()[0][:200]
        )
    elapsed = time.perf_counter() - started
    records = []
    for member, result in zip(members, results, strict=True):
        if isinstance(result, BaseException):
            message = f"{type(result).__name__}: {result}".splitlines()[0][:500]
            row = result_row(member.spec, None, error=message, tb=traceback_summary(result), elapsed=elapsed)
            record = RunRecord(member.spec, row, seconds=elapsed)
        else:
            record = RunRecord(
                member.spec,
                result_row(member.spec, result),
                history=result.history,
                predictions=result.test_predictions,
                labels=result.test_labels,
                seconds=elapsed,
                diagnostics=result.diagnostics,
            )
        record.row.update(seed_batch=len(members), execution="stacked")
        records.append(record)
    first, *rest = records
    first.group = rest
    return first
