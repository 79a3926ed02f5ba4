"""``pool``: N tasks at once in warm worker processes on this machine (``--jobs N``, ``--jobs auto``).

The workers start once per driver process, not once per grid: each is a one-process
:class:`concurrent.futures.ProcessPoolExecutor` forked from a ``forkserver`` that has already imported
torch and fusionzoo (:data:`PRELOAD`), so a new worker costs a fork instead of ~3.5 s of imports, and a
worker that finished one launch (a tuning phase, the grid, the evaluation after it) serves the next.
Each worker opens each input once (memory-mapping the shared feature cache read-only,
:mod:`fusionzoo.launch.transport`; an input's handle travels to a worker once) and executes task after
task on a fixed number of threads (``torch.set_num_threads``, ``OMP/MKL_NUM_THREADS``), optionally on
its own GPU (``CUDA_VISIBLE_DEVICES``). How many workers and threads:
:func:`fusionzoo.launch.resources.plan_jobs`; with ``--jobs auto`` the pool also backs off while it
runs, like ``make -l``: before it starts a task it leaves a worker idle while other processes keep the
CPU that worker would need busy (:class:`~fusionzoo.launch.resources.CpuMonitor`). The driver records
every task as it ends, in this process, whatever order the tasks end in; progress events of every
active task come back through a queue.

Guarantees:

- Ctrl-C: the workers ignore SIGINT; the driver kills the workers of the tasks in progress, has each
  of those tasks discard what it wrote (``task.discard()``) and records nothing of them. A rerun does
  only what is missing.
- The driver is killed (even SIGKILL): the forkserver exits, and each worker notices within a second
  (``PR_SET_PDEATHSIG`` on Linux, and a watchdog thread that polls the driver's pid everywhere) and
  exits without writing anything, so no orphan finishes a task behind the rerun's back.
- A worker process dies (killed, out of memory, a crash in native code): only its executor breaks, so
  the task it held is known exactly; that task is started again on a fresh worker ``retries`` times
  (default 1), then recorded with ``task.failed(...)`` naming the cause. The other workers go on.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from fusionzoo.io import pid_alive
from fusionzoo.launch.base import (
    Driver,
    Launcher,
    TaskContext,
    as_records,
    idle,
    inputs_of,
    register_launcher,
)
from fusionzoo.launch.resources import (
    CpuMonitor,
    JobPlan,
    available_memory,
    free_slots,
    plan_jobs,
    usable_cores,
)

__all__ = ["PRELOAD", "PoolLauncher", "local_plugin_targets", "shutdown_workers", "worker_died_error"]

STEP_EVENT_INTERVAL = 0.25  # seconds between forwarded step events of one task
BACKOFF_INTERVAL = 2.0  # seconds between two looks at the CPU other processes use (--jobs auto)
PRELOAD = ["torch", "numpy", "fusionzoo.launch.pool", "fusionzoo.train.trainer", "fusionzoo.launch.transport"]


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


def worker_died_error(attempts: int, cause: str) -> str:
    """The error of a task whose worker process died ``attempts`` times."""
    return (
        f"the worker process running it died ({cause}) on {attempts} attempt(s): killed, out of memory, "
        "or a crash in native code"
    )


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




def exit_with_parent(driver_pid: int) -> None:
    """Exit this process as soon as its parent (the forkserver or the driver) or the driver is gone."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if not pid_alive(driver_pid) or os.getppid() != parent:  # gone before the prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent or not pid_alive(driver_pid):
                os._exit(1)

    threading.Thread(target=watch, name="fusionzoo-parent-watchdog", daemon=True).start()


def _init_worker(
    slot: int, threads: int, gpu: int | None, plugins: list[str], driver_pid: int, events: Any
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides what an interrupt does
    exit_with_parent(driver_pid)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    limit_threads(threads)
    from fusionzoo import registry

    for target in plugins:
        registry.load_plugin(target)
    _WORKER.update(slot=slot, events=events, handles={})
    events.put(("hello", slot, os.getpid()))


class _Emitter:
    """Forwards a task's progress events to the driver: every start/epoch event, step events throttled."""

    def __init__(self, events: Any, key: str) -> None:
        self.events, self.key = events, key
        self.last = 0.0

    def __call__(self, event: dict[str, Any]) -> None:
        now = time.monotonic()
        if event.get("event") == "step" and now - self.last < STEP_EVENT_INTERVAL:
            return
        self.last = now
        self.events.put(("progress", self.key, dict(event)))


def _run_in_worker(task: Any, handle: Any, device: str) -> Any:
    """Execute ``task`` in this worker; ``handle`` is its input's handle, or only its key when this
    worker received the handle before."""
    from fusionzoo.launch.transport import open_data

    data = None
    if task.input is not None:
        handles = _WORKER["handles"]
        if not isinstance(handle, str):
            handles[handle.key] = handle
            handle = handle.key
        data = open_data(handles[handle])
    return task.execute(TaskContext(data, _Emitter(_WORKER["events"], task.key), device))


# ------------------------------------------------------------------------------------------ warm workers
@dataclass
class _Worker:
    """One warm worker process (a one-process executor) and the input handles it holds."""

    config: tuple[Any, ...]  # (threads, gpu, plugins)
    executor: ProcessPoolExecutor
    slot: int
    pid: int | None = None
    handles: set[str] = field(default_factory=set)


class _Workers:
    """The warm workers of this process: started once, reused by every pool launch (see the module
    docstring); killed at exit, or when a launch is interrupted while they hold its tasks."""

    def __init__(self) -> None:
        self.idle: list[_Worker] = []
        self.context: Any = None
        self.events: Any = None
        self.pids: dict[int, int] = {}  # slot -> pid (from the workers' hello messages)
        self.slots = 0

    def _start_context(self) -> None:
        if self.context is not None:
            return
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        self.context = multiprocessing.get_context(method)
        if method == "forkserver":
            self.context.set_forkserver_preload(PRELOAD)
        # a SimpleQueue writes each message to its pipe before put() returns (a Queue hands it to a
        # feeder thread), so a task's last progress event is readable before its result arrives
        self.events = self.context.SimpleQueue()

    def take(self, threads: int, gpu: int | None, plugins: list[str]) -> _Worker:
        """A warm worker of this configuration (a new one when none is idle)."""
        self._start_context()
        config = (threads, gpu, tuple(plugins))
        for worker in self.idle:
            if worker.config == config:
                self.idle.remove(worker)
                return worker
        self.slots += 1
        executor = ProcessPoolExecutor(
            1,
            mp_context=self.context,
            initializer=_init_worker,
            initargs=(self.slots, threads, gpu, list(plugins), os.getpid(), self.events),
        )
        return _Worker(config, executor, self.slots)

    def give_back(self, worker: _Worker) -> None:
        self.idle.append(worker)

    def kill(self, worker: _Worker, timeout: float = 10.0) -> None:
        """SIGKILL the worker and wait until it is dead (it writes nothing after this returns)."""
        pid = self.pids.pop(worker.slot, None)
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    try:  # WNOWAIT: leave the child to the executor, which reaps it
                        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                            break
                    except ChildProcessError:  # already reaped
                        break
                    time.sleep(0.01)
        worker.executor.shutdown(wait=False, cancel_futures=True)

    def drain(self) -> list[tuple[str, Any, Any]]:
        """The messages the workers sent since the last call (hello messages are kept here)."""
        out = []
        while self.events is not None:
            try:
                if self.events.empty():
                    break
                kind, first, second = self.events.get()
            except (OSError, EOFError, ValueError):  # a closed queue at shutdown
                break
            if kind == "hello":
                self.pids[first] = second
            else:
                out.append((kind, first, second))
        return out

    def shutdown(self) -> None:
        for worker in self.idle:
            worker.executor.shutdown(wait=False, cancel_futures=True)
        self.idle.clear()


_WORKERS = _Workers()
atexit.register(_WORKERS.shutdown)


def shutdown_workers() -> None:
    """Stop the idle warm workers of this process (the next pool launch starts new ones)."""
    _WORKERS.shutdown()


# ------------------------------------------------------------------------------------------ driver side
@dataclass
class _Slot:
    index: int
    gpu: int | None
    worker: _Worker | None = None
    task: Any = None
    future: Future | None = None


@register_launcher
class PoolLauncher(Launcher):
    """Run the tasks ``jobs`` at a time in warm worker processes; see the module docstring.

    ``jobs``/``threads``: as :func:`~fusionzoo.launch.resources.plan_jobs` (``None``: ``auto``, as many
    tasks as the free CPU holds, one thread each); ``device``: the tasks' device (GPU slots for
    ``auto``/``cuda``); ``retries``: how often a task whose worker process died is started again
    before it is recorded failed.
    """

    name = "pool"
    description = "N tasks at once in warm worker processes on this machine (--jobs N)"
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
        self._slots: list[_Slot] = []

    @property
    def worker_pids(self) -> dict[int, int]:
        """Slot -> pid of its live worker process."""
        return {
            s.index: _WORKERS.pids[s.worker.slot]
            for s in self._slots
            if s.worker is not None and s.worker.slot in _WORKERS.pids
        }

    def worker_of(self, key: str) -> int | None:
        """The pid of the worker process executing the task ``key`` now (None: not running)."""
        for slot in self._slots:
            if slot.task is not None and slot.task.key == key and slot.worker is not None:
                return _WORKERS.pids.get(slot.worker.slot)
        return None

    def plan_for(self, tasks: list[Any], datas: dict[str, Any] | None = None) -> JobPlan:
        return plan_jobs(len(tasks), self.jobs, self.threads, self.device, _memory_per_task(datas or {}))

    # ------------------------------------------------------------------------------------------- run
    def run(self, tasks: list[Any], inputs_for: Callable[[str], Any], driver: Driver) -> None:
        from fusionzoo.launch.transport import data_handle

        if not tasks:
            return
        # warm workers outlive the launch that started them and keep its working directory: a task's
        # relative paths (checkpoints under a relative --out) are made absolute here, in the driver's
        tasks = [task.absolute() for task in tasks]
        datas = inputs_of(tasks, inputs_for)
        plan = self.plan_for(tasks, datas)
        self.plan = plan
        budget = _memory_budget(plan.jobs)
        handles = {key: data_handle(data, memory_budget=budget) for key, data in datas.items()}
        note = getattr(driver, "note", None)
        if note is not None:
            kinds = {h.kind for h in handles.values()}
            how = (
                "; features memory-mapped from the feature cache"
                if kinds == {"cache"}
                else "; inputs pickled to each worker once"
                if kinds
                else ""
            )
            note(f"[bold]pool[/bold]: {plan.describe()}{how}")
        plugins = local_plugin_targets()
        slots = [_Slot(i, plan.gpus[i] if i < len(plan.gpus) else None) for i in range(plan.jobs)]
        self._slots = slots
        by_key = {t.key: t for t in tasks}
        pending: deque[Any] = deque(tasks)
        attempts: dict[str, int] = {}
        active: dict[Future, _Slot] = {}
        started: dict[str, Any] = {}  # tasks handed to a worker and not recorded yet
        monitor = CpuMonitor() if self.jobs is None and plan.gpus == [None] * plan.jobs else None
        limit, looked = plan.jobs, time.monotonic()

        def deliver() -> None:
            for kind, key, event in _WORKERS.drain():
                if kind == "progress" and key in started:
                    driver.progress(by_key[key], event)

        def start(slot: _Slot, task: Any) -> None:
            for _ in range(2):  # a worker that died while idle is broken: replace it once
                if slot.worker is None:
                    slot.worker = _WORKERS.take(plan.threads, slot.gpu, plugins)
                handle = None
                if task.input is not None:
                    handle = handles[task.input]
                    handle = handle.key if handle.key in slot.worker.handles else handle
                try:
                    future = slot.worker.executor.submit(_run_in_worker, task, handle, self.device)
                    break
                except BrokenProcessPool:
                    _WORKERS.kill(slot.worker)
                    slot.worker = None
            else:  # pragma: no cover - two broken starts in a row
                raise RuntimeError("could not start a worker process")
            if task.input is not None:
                slot.worker.handles.add(handles[task.input].key)
            slot.task, slot.future = task, future
            active[future] = slot
            started[task.key] = task

        finished_cleanly = False
        try:
            while pending or active:
                if monitor is not None and time.monotonic() - looked >= BACKOFF_INTERVAL:
                    others, looked = monitor.sample(), time.monotonic()
                    if others is not None:
                        limit = min(plan.jobs, free_slots(usable_cores(), others, plan.threads))
                for slot in slots:
                    if slot.future is None and pending and len(active) < limit:
                        start(slot, pending.popleft())
                deliver()
                done, _ = wait(list(active), timeout=0.1, return_when=FIRST_COMPLETED)
                for future in done:
                    slot = active.pop(future)
                    task = slot.task
                    slot.task = slot.future = None
                    records = self._outcome(future, slot, task, attempts, pending, note)
                    deliver()
                    if records is not None:
                        started.pop(task.key, None)  # never discard a recorded task's output
                        for record in records:
                            driver.finished(record)
                idle(driver)
            finished_cleanly = True
        finally:
            for slot in slots:
                if slot.worker is None:
                    continue
                if finished_cleanly or slot.task is None:
                    _WORKERS.give_back(slot.worker)
                else:
                    _WORKERS.kill(slot.worker)
                slot.worker = None
            for task in started.values():  # interrupted: what its worker wrote goes (the rerun redoes it)
                task.discard()

    def _outcome(
        self,
        future: Future,
        slot: _Slot,
        task: Any,
        attempts: dict[str, int],
        pending: deque[Any],
        note: Callable[[str], None] | None,
    ) -> list[Any] | None:
        """The records of a finished future; ``None`` when the task goes back to the queue (retried)."""
        try:
            return as_records(future.result())
        except BrokenProcessPool as exc:
            assert slot.worker is not None
            _WORKERS.kill(slot.worker)
            slot.worker = None
            attempts[task.key] = attempts.get(task.key, 0) + 1
            if attempts[task.key] <= self.retries:
                if note is not None:
                    note(f"[yellow]worker died[/yellow] while running {task.label}; retrying it")
                pending.appendleft(task)
                return None
            return [task.failed(worker_died_error(attempts[task.key], type(exc).__name__))]
        except Exception as exc:  # e.g. a record that cannot be pickled back: this task failed
            return [task.failed(f"{type(exc).__name__}: {exc}".splitlines()[0][:500])]


def _memory_per_task(datas: dict[str, Any]) -> int | None:
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
