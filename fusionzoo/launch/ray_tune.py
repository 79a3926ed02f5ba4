"""``fusionzoo tune --launcher ray``: the study's workers are Ray tasks on a cluster.

Optuna's storage already hands out the trials (``fusionzoo.tune.study``: the exact budget claim, the
seeded samplers per worker index, heartbeats and retries of a dead worker's trial), so a Ray task here
is one tuning *worker* (``--jobs N`` of them, ``num_cpus = --threads``) that runs trials until the
study's budget is taken. The storage must be reachable from every node: PostgreSQL/MySQL for several
machines (heartbeats fail and re-queue a dead node's trial), or ``journal:PATH`` / SQLite on storage
every node mounts. Paths in the settings are made absolute first (Ray workers run in another folder).
A worker whose node dies is retried by Ray; its RUNNING trial is failed and re-queued by the storage's
heartbeat mechanism.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["absolute_settings", "launch_ray_workers"]


def _absolute_url(url: str | None) -> str | None:
    if not url:
        return url
    if url.startswith("journal:"):
        return "journal:" + str(Path(url.removeprefix("journal:")).expanduser().resolve())
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(url.removeprefix("sqlite:///")).expanduser().resolve())
    return url


def absolute_settings(settings: Any) -> Any:
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


def _tune_worker(settings: Any, threads: int) -> dict[str, Any]:
    import optuna

    from fusionzoo.launch.pool import limit_threads
    from fusionzoo.tune.worker import run_worker

    limit_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    report = run_worker(settings)
    return {"ran": report.ran, "timeout": report.stopped_by_timeout}


def launch_ray_workers(
    settings: Any,
    workers: int,
    *,
    address: str | None = None,
    threads: int = 1,
    poll: Callable[[], None] | None = None,
    poll_interval: float = 1.0,
    max_retries: int = 2,
) -> list[int]:
    """Run ``workers`` tuning workers as Ray tasks; return an exit code per worker (0 = finished)."""
    from fusionzoo.launch.ray import connect, require_ray

    ray = require_ray()
    started_here = connect(address)
    settings = absolute_settings(settings)
    remote = ray.remote(_tune_worker)
    refs = [
        remote.options(
            num_cpus=threads,
            max_retries=max_retries,
            retry_exceptions=False,
            name=f"fusionzoo:tune worker {i}",
        ).remote(settings.replace(worker_index=i), threads)
        for i in range(workers)
    ]
    codes = dict.fromkeys(refs, 0)
    try:
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=poll_interval)
            for ref in ready:
                try:
                    ray.get(ref)
                except ray.exceptions.RayError:
                    codes[ref] = 1
            if poll is not None:
                poll()
    except BaseException:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started_here:
            ray.shutdown()
    return [codes[ref] for ref in refs]
