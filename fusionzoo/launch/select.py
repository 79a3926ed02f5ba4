"""Which launcher a command uses: the ``[run]`` settings (:mod:`fusionzoo.run_settings`) and torchrun.

Every command (bench, eval, tune, encode) asks :func:`launcher_for` for the launcher of its tasks:

- ``local`` (the default) with one job is the in-process :class:`~fusionzoo.launch.local.LocalLauncher`;
  with more (``--jobs N``, or ``--jobs auto`` when the free CPU holds several tasks at once, see
  :func:`~fusionzoo.launch.resources.plan_jobs`) it is the warm process pool :mod:`fusionzoo.launch.pool`.
- Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) every run is trained by all ranks together
  (:mod:`fusionzoo.launch.ddp`).
- Any other name is built from the registry with the settings its constructor takes (``jobs``,
  ``threads``, ``device``, ``address``, ``retries``), so a third-party launcher gets them too.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from fusionzoo import registry

__all__ = ["check_cluster", "distributed_world", "launcher_for"]


def distributed_world() -> int:
    """The number of torchrun processes this one belongs to (1 outside torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def launcher_for(settings: Any, tasks: int) -> Any:
    """The launcher of the ``[run]`` settings (a :class:`~fusionzoo.run_settings.RunSettings`, or a
    config / ``[bench]`` section holding the older keys) for ``tasks`` tasks to do."""
    from fusionzoo.launch.resources import plan_jobs
    from fusionzoo.run_settings import run_settings

    run = run_settings(settings)
    name, kwargs = registry.parse_spec(run.launcher)
    if distributed_world() > 1:
        if name != "local":
            raise ValueError(
                f"under torchrun runs are trained by all ranks: use --launcher local, not {name}"
            )
        return registry.create("launcher", "ddp", device=run.device)
    if name == "local":
        if run.fixed_jobs == 1 or tasks <= 1:
            return registry.create("launcher", "local", device=run.device)
        plan = plan_jobs(tasks, run.fixed_jobs, run.threads, run.device)
        if plan.jobs <= 1:
            return registry.create("launcher", "local", device=run.device)
        name = "pool"
    values = {
        "jobs": run.fixed_jobs,
        "threads": run.threads,
        "device": run.device,
        "address": run.ray_address,
        "retries": run.retries,
    }
    entry = registry.get_entry("launcher", name)
    accepted = inspect.signature(entry.obj).parameters
    extra = {k: v for k, v in values.items() if v is not None and k in accepted and k not in kwargs}
    return registry.create("launcher", registry.format_spec(name, kwargs), **extra)


def check_cluster(settings: Any) -> None:
    """``--launcher ray``: the cluster address (the spec's ``address``, ``--ray-address``, else
    ``$RAY_ADDRESS``) is well formed and answers: a ``ConfigError`` naming it, before any data work."""
    from fusionzoo.run_settings import run_settings

    bench = run_settings(settings)
    name, kwargs = registry.parse_spec(bench.launcher)
    if name != "ray":
        return
    from fusionzoo.config import ConfigError
    from fusionzoo.launch.ray import RayConnectError, check_address

    try:
        check_address(kwargs.get("address") or bench.ray_address)
    except RayConnectError as exc:
        raise ConfigError(str(exc)) from None
