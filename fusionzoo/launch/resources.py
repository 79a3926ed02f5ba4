"""How many tasks at once, on how many threads, on which GPU: the rule behind ``--jobs``.

Each task keeps the thread count it would have alone (``--threads``, default 1): on CPU a run's numbers
depend on its thread count (measured: FLUID's training loss after 2 epochs of the quick preset differs
in the 4th digit between 1 and 2 threads), so keeping it fixed is what makes ``--jobs N`` give exactly
the numbers of ``--jobs 1``. ``--jobs auto`` (the default) then runs as many tasks as the *free* CPU
holds without slowing each one, like ``make -j -l``:

- CPU: ``min(tasks to do, free cores // threads, available memory // memory per task)``, where the usable
  cores are the affinity mask (``os.sched_getaffinity``: a container's or SLURM's share) capped by the
  cgroup CPU quota (``cpu.max``), and the free cores are those minus the CPU other processes use now
  (:func:`busy_cpus`: ``/proc/stat`` over a short window, this process and its children left out; the
  1-minute load average where ``/proc/stat`` is missing), rounded to whole cores. One other process
  busy on a 2-core machine leaves one free core: one job, in this process, no pool at all (measured in
  ``benchmarks/perf/jobs_speedup.py``: two jobs there were slower than one).
- GPU (``--device auto|cuda`` with GPUs visible): one task per GPU, ``min(tasks, GPUs)``; ``--jobs N``
  above the GPU count shares the GPUs round-robin (a fraction of a GPU per task, for small models).

A worker process of slot ``i`` sees only GPU ``i mod GPUs`` (``CUDA_VISIBLE_DEVICES``).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from fusionzoo.io import available_memory

__all__ = [
    "JobPlan",
    "available_memory",
    "CpuMonitor",
    "busy_cpus",
    "cpu_quota",
    "free_slots",
    "plan_jobs",
    "torch_threads",
    "usable_cores",
    "visible_gpus",
]

PROCESS_OVERHEAD = 600 << 20  # torch + fusionzoo imported, a small model and its optimiser


def cpu_quota(root: str = "/sys/fs/cgroup") -> float | None:
    """CPUs the cgroup quota allows (``cpu.max`` of cgroup v2, ``cpu.cfs_quota_us`` of v1); None: no quota."""
    try:
        with open(os.path.join(root, "cpu.max")) as handle:
            quota, _, period = handle.read().split()[:2] + [""]
        if quota != "max":
            return int(quota) / int(period or 100000)
        return None
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(root, "cpu", "cpu.cfs_quota_us")) as handle:
            quota_us = int(handle.read())
        with open(os.path.join(root, "cpu", "cpu.cfs_period_us")) as handle:
            period_us = int(handle.read())
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    except (OSError, ValueError):
        return None


def usable_cores() -> int:
    """CPU cores this process may use: its affinity mask (a container's or SLURM's share), capped by
    the cgroup CPU quota (rounded up: a quota of 1.5 CPUs still runs two threads)."""
    if hasattr(os, "sched_getaffinity"):
        cores = max(1, len(os.sched_getaffinity(0)))
    else:  # pragma: no cover - not Linux
        cores = max(1, os.cpu_count() or 1)
    quota = cpu_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def _machine_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of every CPU of the machine since boot, from ``/proc/stat``."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user/nice
    return total - idle, total


def _process_table() -> dict[int, tuple[int, int]]:
    """``{pid: (parent pid, user + system jiffies)}`` of every process in ``/proc``."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            table[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def _own_jiffies() -> int:
    """CPU jiffies (user + system) of this process and its live descendants (e.g. a warm pool)."""
    try:
        table = _process_table()
    except OSError:
        return 0
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        total += table.get(pid, (0, 0))[1]
        todo += children.get(pid, [])
    return total


class CpuMonitor:
    """CPUs other processes used between two :meth:`sample` calls (no sleeping: for a scheduler loop)."""

    def __init__(self) -> None:
        self.last = _machine_jiffies(), _own_jiffies()

    def sample(self) -> float | None:
        """Other processes' busy CPUs since the previous sample (None: no ``/proc/stat``)."""
        now = _machine_jiffies(), _own_jiffies()
        (before, own_before), (after, own_after) = self.last, now
        self.last = now
        if before is None or after is None or after[1] <= before[1]:
            return None
        busy = (after[0] - before[0]) - (own_after - own_before)
        return max(0.0, busy / (after[1] - before[1]) * (os.cpu_count() or 1))


def busy_cpus(window: float = 0.3) -> float:
    """CPUs that *other* processes keep busy now: ``/proc/stat`` sampled over ``window`` seconds, with
    the CPU of this process and its children taken out; where ``/proc/stat`` is missing, the 1-minute
    load average minus this process (which counts itself, like ``make -l``)."""
    monitor = CpuMonitor()
    if monitor.last[0] is None:
        with contextlib.suppress(OSError, AttributeError):
            return max(0.0, os.getloadavg()[0] - 1.0)
        return 0.0
    time.sleep(window)
    return monitor.sample() or 0.0


def free_slots(cores: int, others: float, threads: int) -> int:
    """Tasks of ``threads`` threads that fit beside ``others`` busy CPUs on ``cores`` (at least 1)."""
    taken = min(cores, int(round(others)))
    return max(1, (cores - taken) // max(1, threads))


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with torch's intra-op thread count at ``threads`` (at least 1), then restore it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def visible_gpus() -> int:
    """CUDA devices visible to this process (0 without CUDA); does not initialise a CUDA context."""
    try:
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # a broken driver counts as no GPU
        return 0


@dataclass(frozen=True)
class JobPlan:
    """``jobs`` runs at once, ``threads`` CPU threads each, ``gpus[i]`` the GPU of slot ``i`` (or None)."""

    jobs: int
    threads: int
    gpus: list[int | None] = field(default_factory=list)
    reason: str = ""

    def describe(self) -> str:
        where = (
            f"GPUs {sorted({g for g in self.gpus if g is not None})}"
            if any(g is not None for g in self.gpus)
            else "CPU"
        )
        return f"{self.jobs} run(s) at once, {self.threads} thread(s) each, on {where} ({self.reason})"


def _wants_gpu(device: str) -> bool:
    return device == "auto" or device == "cuda"


def plan_jobs(
    runs: int,
    jobs: int | None = None,
    threads: int | None = None,
    device: str = "auto",
    memory_per_run: int | None = None,
    busy: float | None = None,
) -> JobPlan:
    """The plan for ``runs`` tasks; ``jobs``/``threads`` given by the user win (see the module docstring).

    ``busy``: CPUs other processes use (default: measured now, :func:`busy_cpus`; only ``auto`` asks)."""
    runs = max(1, int(runs))
    threads = max(1, int(threads or 1))
    gpus = visible_gpus() if _wants_gpu(device) else 0
    if jobs is not None and jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    if gpus:
        n = jobs or min(runs, gpus)
        reason = "--jobs" if jobs else f"one run per GPU, {gpus} visible"
        return JobPlan(n, threads, [i % gpus for i in range(n)], reason)
    cores = usable_cores()
    if jobs:
        reason = "--jobs"
        if jobs * threads > cores:
            reason += f"; more threads than the {cores} usable cores: runs will slow each other"
        return JobPlan(jobs, threads, [None] * jobs, reason)
    others = busy_cpus() if busy is None else max(0.0, float(busy))
    taken = min(cores, int(round(others)))
    free = max(1, cores - taken)
    n = min(runs, free_slots(cores, others, threads))
    reason = f"{cores} usable cores ÷ {threads} thread(s) per run, {runs} run(s) to do"
    if taken:
        reason = (
            f"{cores} usable cores, {others:.1f} busy with other processes: {free} free ÷ {threads} "
            f"thread(s) per run, {runs} run(s) to do"
        )
    free = available_memory()
    if memory_per_run and free:
        fit = max(1, int(free * 0.8) // (memory_per_run + PROCESS_OVERHEAD))
        if fit < n:
            n, reason = fit, f"memory: {fit} run(s) fit in 80% of the available memory"
    return JobPlan(n, threads, [None] * n, reason)
