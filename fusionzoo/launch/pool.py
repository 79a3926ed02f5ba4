"""``pool``: N runs at once in worker processes on this machine (``fusionzoo bench --jobs N``).

Each of the N slots is a one-process :class:`concurrent.futures.ProcessPoolExecutor` (``spawn``) whose
worker lives for the whole grid: it opens each dataset's features once (memory-mapping the shared
cache read-only, :mod:`fusionzoo.launch.transport`), then trains task after task through
:func:`~fusionzoo.launch.base.execute_run` on a fixed number of threads (``torch.set_num_threads`` and
``OMP/MKL_NUM_THREADS``), optionally on its own GPU (``CUDA_VISIBLE_DEVICES``). How many slots and
threads: :func:`fusionzoo.launch.resources.plan_jobs`. The driver records every run as it ends, in
this process, whatever order the runs end in; progress events of every active run come back through
a queue and the driver shows one bar per run.

Guarantees (the local launcher's, kept):

- Ctrl-C: the workers ignore SIGINT; the driver kills them, removes the checkpoints of the runs in
  progress and records nothing of them. A rerun trains only what is missing.
- The driver is killed (even SIGKILL): each worker notices within a second (``PR_SET_PDEATHSIG`` on
  Linux, and a watchdog thread that polls the parent pid everywhere) and exits without writing
  anything, so no orphan finishes a run behind the rerun's back.
- A worker process dies (killed, out of memory, a crash in native code): only its slot's executor
  breaks, so the run it held is known exactly; that run is retried on a fresh worker ``retries``
  times (default 1), then recorded ``failed`` naming the cause. The other slots go on.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fusionzoo.launch.base import (
    Driver,
    Launcher,
    RunRecord,
    RunTask,
    execute_run,
    register_launcher,
    result_row,
)
from fusionzoo.launch.resources import JobPlan, available_memory, plan_jobs

__all__ = ["PoolLauncher", "local_plugin_targets", "worker_died_record"]

STEP_EVENT_INTERVAL = 0.25  # seconds between forwarded step events of one run


def local_plugin_targets() -> list[str]:
    """The ``--plugin`` modules/files loaded in this process, for worker processes to load too."""
    from fusionzoo.registry import REGISTRIES

    targets = []
    for registry in REGISTRIES.values():
        for name in registry.names():
            source = registry.get(name).source
            if source.startswith("local:"):
                targets.append(source.removeprefix("local:"))
    return list(dict.fromkeys(targets))


def worker_died_record(task: RunTask, attempts: int, cause: str) -> RunRecord:
    """The ``failed`` record of a run whose worker process died ``attempts`` times."""
    error = (
        f"the worker process running it died ({cause}) on {attempts} attempt(s): killed, out of memory, "
        "or a crash in native code"
    )
    return RunRecord(task.spec, result_row(task.spec, None, error=error))


# ------------------------------------------------------------------------------------------ worker side
_WORKER: dict[str, Any] = {}


def limit_threads(threads: int) -> None:
    """Pin this process's intra-op parallelism (torch, OpenMP, MKL) to ``threads``."""
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(threads)
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # only settable before the first inter-op work
        torch.set_num_interop_threads(1)


def exit_with_parent(parent_pid: int) -> None:
    """Exit this process as soon as ``parent_pid`` is gone (prctl on Linux, a watchdog thread always)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent died before the prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="fusionzoo-parent-watchdog", daemon=True).start()


def _init_worker(
    slot: int,
    threads: int,
    gpu: int | None,
    plugins: list[str],
    parent_pid: int,
    events: Any,
    handles: dict[str, Any],
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides what an interrupt does
    exit_with_parent(parent_pid)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    limit_threads(threads)
    from fusionzoo import registry

    for target in plugins:
        registry.load_plugin(target)
    _WORKER.update(slot=slot, events=events, handles=handles)
    events.put(("hello", slot, os.getpid()))


class _Emitter:
    """Forwards a run's progress events to the driver: every start/epoch event, step events throttled."""

    def __init__(self, events: Any, run_id: str) -> None:
        self.events, self.run_id = events, run_id
        self.last = 0.0

    def __call__(self, event: dict[str, Any]) -> None:
        now = time.monotonic()
        if event.get("event") == "step" and now - self.last < STEP_EVENT_INTERVAL:
            return
        self.last = now
        self.events.put(("progress", self.run_id, dict(event)))


def _run_in_worker(task: RunTask) -> RunRecord:
    from fusionzoo.launch.transport import open_data

    events = _WORKER["events"]
    data = open_data(_WORKER["handles"][task.spec.dataset])
    return execute_run(task, data, progress=_Emitter(events, task.spec.run_id))


# ------------------------------------------------------------------------------------------ driver side
@dataclass
class _Slot:
    index: int
    gpu: int | None
    executor: ProcessPoolExecutor | None = None
    pid: int | None = None
    task: RunTask | None = None
    future: Future | None = None


@register_launcher
class PoolLauncher(Launcher):
    """Run the tasks ``jobs`` at a time in worker processes; see the module docstring.

    ``jobs``/``threads``: as :func:`~fusionzoo.launch.resources.plan_jobs` (default: as many runs as
    the machine holds, one thread each); ``device``: the runs' device (GPU slots for ``auto``/``cuda``);
    ``retries``: how often a run whose worker process died is retried before it is recorded failed.
    """

    name = "pool"
    description = "N runs at once in worker processes on this machine (--jobs N)"
    batches_seeds = True
    test_config = {"jobs": 2}

    def __init__(
        self, jobs: int | None = None, threads: int | None = None, device: str = "auto", retries: int = 1
    ) -> None:
        if jobs is not None and jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {jobs}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.jobs, self.threads, self.device, self.retries = jobs, threads, device, retries
        self.plan: JobPlan | None = None
        self.worker_pids: dict[int, int] = {}
        self._slots: list[_Slot] = []

    def worker_of(self, run_id: str) -> int | None:
        """The pid of the worker process training ``run_id`` now (None: not running)."""
        for slot in self._slots:
            if slot.task is not None and slot.task.spec.run_id == run_id:
                return self.worker_pids.get(slot.index)
        return None

    def plan_for(self, tasks: list[RunTask], handles: dict[str, Any] | None = None) -> JobPlan:
        return plan_jobs(len(tasks), self.jobs, self.threads, self.device, _memory_per_run(handles or {}))

    # ------------------------------------------------------------------------------------------- run
    def run(self, tasks: list[RunTask], data_for: Callable[[str], Any], driver: Driver) -> None:
        from fusionzoo.launch.transport import data_handle

        if not tasks:
            return
        datas = {d: data_for(d) for d in dict.fromkeys(t.spec.dataset for t in tasks)}
        plan = self.plan_for(tasks, datas)
        self.plan = plan
        budget = _memory_budget(plan.jobs)
        handles = {d: data_handle(data, memory_budget=budget) for d, data in datas.items()}
        note = getattr(driver, "note", None)
        if note is not None:
            kinds = {h.kind for h in handles.values()}
            how = "memory-mapped from the feature cache" if kinds == {"cache"} else "pickled to each worker"
            note(f"[bold]pool[/bold]: {plan.describe()}; features {how}")
        context = multiprocessing.get_context("spawn")
        events = context.Queue()
        initargs = (plan.threads, local_plugin_targets(), os.getpid(), events, handles)
        slots = [_Slot(i, plan.gpus[i] if i < len(plan.gpus) else None) for i in range(plan.jobs)]
        by_id = {t.spec.run_id: t for t in tasks}
        pending: deque[RunTask] = deque(tasks)
        attempts: dict[str, int] = {}
        active: dict[Future, _Slot] = {}
        pids: dict[int, int] = {}  # slot -> pid of its live worker
        self.worker_pids = pids
        self._slots = slots
        running: set[str] = set()

        def drain() -> None:
            while True:
                try:
                    kind, first, second = events.get_nowait()
                except Exception:  # queue.Empty (or a closed queue at shutdown)
                    return
                if kind == "hello":
                    pids[first] = second
                elif kind == "progress" and first in running:
                    driver.progress(by_id[first], second)

        def start(slot: _Slot, task: RunTask) -> None:
            for _ in range(2):  # a slot whose idle worker died is broken: restart it once
                if slot.executor is None:
                    slot.executor = ProcessPoolExecutor(
                        1, mp_context=context, initializer=_init_worker, initargs=_slot_args(slot, initargs)
                    )
                try:
                    future = slot.executor.submit(_run_in_worker, task)
                    break
                except BrokenProcessPool:
                    _close(slot, pids, kill=True)
            else:  # pragma: no cover - two broken starts in a row
                raise RuntimeError("could not start a worker process")
            slot.task, slot.future = task, future
            active[future] = slot
            running.add(task.spec.run_id)
            started[task.spec.run_id] = task

        started: dict[str, RunTask] = {}  # runs handed to a worker and not recorded yet
        finished_cleanly = False
        try:
            while pending or active:
                for slot in slots:
                    if slot.future is None and pending:
                        start(slot, pending.popleft())
                drain()
                done, _ = wait(list(active), timeout=0.1, return_when=FIRST_COMPLETED)
                for future in done:
                    slot = active.pop(future)
                    task = slot.task
                    assert task is not None
                    slot.task = slot.future = None
                    record = self._outcome(future, slot, task, attempts, pending, pids, note)
                    drain()
                    running.discard(task.spec.run_id)
                    if record is not None:
                        started.pop(task.spec.run_id, None)  # never delete a recorded run's checkpoint
                        driver.finished(record)
            finished_cleanly = True
        finally:
            for slot in slots:
                _close(slot, pids, kill=not finished_cleanly)
            for task in started.values():  # interrupted: what its worker wrote goes (the rerun redoes it)
                if task.checkpoint_dir is not None:
                    shutil.rmtree(Path(task.checkpoint_dir), ignore_errors=True)
            with contextlib.suppress(Exception):
                events.close()

    def _outcome(
        self,
        future: Future,
        slot: _Slot,
        task: RunTask,
        attempts: dict[str, int],
        pending: deque[RunTask],
        pids: dict[int, int],
        note: Callable[[str], None] | None,
    ) -> RunRecord | None:
        """The record of a finished future; ``None`` when the run goes back to the queue (retried)."""
        try:
            return future.result()
        except BrokenProcessPool as exc:
            _close(slot, pids, kill=True)
            run_id = task.spec.run_id
            attempts[run_id] = attempts.get(run_id, 0) + 1
            if attempts[run_id] <= self.retries:
                if note is not None:
                    note(f"[yellow]worker died[/yellow] while training {task.spec.label}; retrying it")
                pending.appendleft(task)
                return None
            return worker_died_record(task, attempts[run_id], type(exc).__name__)
        except Exception as exc:  # e.g. a record that cannot be pickled back: this run failed
            message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
            return RunRecord(task.spec, result_row(task.spec, None, error=message))


def _slot_args(slot: _Slot, initargs: tuple[Any, ...]) -> tuple[Any, ...]:
    threads, plugins, parent, events, handles = initargs
    return (slot.index, threads, slot.gpu, plugins, parent, events, handles)


def _kill(slot: _Slot, pids: dict[int, int], timeout: float = 10.0) -> None:
    """SIGKILL the slot's worker and wait until it is dead (it writes nothing after this returns)."""
    pid = pids.pop(slot.index, None)
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:  # WNOWAIT: leave the child to the executor, which reaps it
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return
        except ChildProcessError:  # already reaped
            return
        time.sleep(0.01)


def _close(slot: _Slot, pids: dict[int, int], kill: bool) -> None:
    if slot.executor is None:
        return
    if kill:
        _kill(slot, pids)
    slot.executor.shutdown(wait=not kill, cancel_futures=True)
    slot.executor = None


def _memory_per_run(datas: dict[str, Any]) -> int | None:
    """Bytes one worker holds for the data: the splits it reads into RAM (fp16, as stored)."""
    from fusionzoo.train.inputs import SPLIT_NAMES, FeatureData, default_memory_budget

    total, budget = 0, default_memory_budget()
    for data in datas.values():
        if isinstance(data, FeatureData):
            sizes = [data.split(s).stored_bytes() for s in SPLIT_NAMES]
            total += sum(size for size in sizes if size <= budget)
    return total or None


def _memory_budget(jobs: int) -> int | None:
    """Per-worker budget for reading splits into RAM: the default, or less when N copies would not fit."""
    from fusionzoo.train.inputs import default_memory_budget

    free = available_memory()
    if free is None:
        return None
    share = int(free * 0.6) // max(1, jobs)
    return share if share < default_memory_budget() else None
