"""Which launcher a command uses: ``--launcher``, ``--jobs``, ``--threads``, ``--ray-address``, torchrun.

- ``local`` (the default) with one job is the in-process :class:`~fusionzoo.launch.local.LocalLauncher`;
  with more (``--jobs N``, or the default when the machine holds several runs at once, see
  :func:`~fusionzoo.launch.resources.plan_jobs`) it is the process pool :mod:`fusionzoo.launch.pool`.
- Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) every run is trained by all ranks together
  (:mod:`fusionzoo.launch.ddp`).
- Any other name is built from the registry with the settings its constructor takes (``jobs``,
  ``threads``, ``device``, ``address``), so a third-party launcher gets them too.
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


def launcher_for(bench: Any, runs: int) -> Any:
    """The launcher of a ``[bench]`` table (``BenchSection``) for ``runs`` runs to do."""
    from fusionzoo.launch.resources import plan_jobs

    name, kwargs = registry.parse_spec(bench.launcher)
    if distributed_world() > 1:
        if name != "local":
            raise ValueError(
                f"under torchrun runs are trained by all ranks: use --launcher local, not {name}"
            )
        return registry.create("launcher", "ddp", device=bench.device)
    if name == "local":
        plan = plan_jobs(runs, bench.jobs, bench.threads, bench.device)
        if plan.jobs <= 1:
            return registry.create("launcher", "local")
        name = "pool"
    settings = {
        "jobs": bench.jobs,
        "threads": bench.threads,
        "device": bench.device,
        "address": bench.ray_address,
    }
    entry = registry.get_entry("launcher", name)
    accepted = inspect.signature(entry.obj).parameters
    extra = {k: v for k, v in settings.items() if v is not None and k in accepted and k not in kwargs}
    return registry.create("launcher", registry.format_spec(name, kwargs), **extra)


def check_cluster(bench: Any) -> None:
    """``--launcher ray``: the cluster address (the spec's ``address``, ``--ray-address``, else
    ``$RAY_ADDRESS``) is well formed and answers: a ``ConfigError`` naming it, before any data work."""
    name, kwargs = registry.parse_spec(bench.launcher)
    if name != "ray":
        return
    from fusionzoo.config import ConfigError
    from fusionzoo.launch.ray import RayConnectError, check_address

    try:
        check_address(kwargs.get("address") or bench.ray_address)
    except RayConnectError as exc:
        raise ConfigError(str(exc)) from None
