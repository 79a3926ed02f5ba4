"""How many runs at once, on how many threads, on which GPU: the rule behind ``--jobs``.

Each run keeps the thread count it would have alone (``--threads``, default 1): on CPU a run's numbers
depend on its thread count (measured: FLUID's training loss after 2 epochs of the quick preset differs
in the 4th digit between 1 and 2 threads), so keeping it fixed is what makes ``--jobs N`` give exactly
the numbers of ``--jobs 1``. The default number of jobs is then as many as the machine holds without
slowing each run:

- CPU: ``min(runs to do, usable cores // threads, available memory // memory per run)``;
- GPU (``--device auto|cuda`` with GPUs visible): one run per GPU, ``min(runs, GPUs)``; ``--jobs N``
  above the GPU count shares the GPUs round-robin (a fraction of a GPU per run, for small models).

A worker process of slot ``i`` sees only GPU ``i mod GPUs`` (``CUDA_VISIBLE_DEVICES``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from fusionzoo.io import available_memory

__all__ = ["JobPlan", "available_memory", "plan_jobs", "torch_threads", "usable_cores", "visible_gpus"]

PROCESS_OVERHEAD = 600 << 20  # torch + fusionzoo imported, a small model and its optimiser


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's or SLURM's share)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


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
) -> JobPlan:
    """The plan for ``runs`` runs; ``jobs``/``threads`` given by the user win (see the module docstring)."""
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
    n = max(1, min(runs, cores // threads))
    reason = f"{cores} usable cores ÷ {threads} thread(s) per run, {runs} run(s) to do"
    free = available_memory()
    if memory_per_run and free:
        fit = max(1, int(free * 0.8) // (memory_per_run + PROCESS_OVERHEAD))
        if fit < n:
            n, reason = fit, f"memory: {fit} run(s) fit in 80% of the available memory"
    return JobPlan(n, threads, [None] * n, reason)
