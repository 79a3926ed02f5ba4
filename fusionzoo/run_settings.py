"""The ``[run]`` section: where and how many tasks at once, read by every command.

``bench``, ``eval``, ``tune`` and ``encode`` all cut their work into tasks (a training run, an evaluation
task, a tuning worker, an encode shard) and hand them to one launcher built from these settings
(:func:`fusionzoo.launch.select.launcher_for`), so each key means the same in every command:

- ``launcher``: a launcher spec (``local``, ``pool``, ``ray``, ``submitit:partition=gpu``; ``fusionzoo list
  launchers``). ``local`` with more than one job is the process pool.
- ``jobs``: tasks at once. An integer, or ``auto`` (the default): as many as the *free* CPU holds at
  ``threads`` each (:func:`fusionzoo.launch.resources.plan_jobs`), never more than one on a busy machine.
- ``threads``: CPU threads of each task (default 1; a run's numbers depend on it, so it is part of
  what the run computes, never changed behind the user's back).
- ``device``: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
- ``ray_address``: the Ray cluster of ``--launcher ray`` (default ``$RAY_ADDRESS``, else a local one).
- ``retries``: how often a task whose worker process (or node) died is started again before it is
  recorded failed.

Older presets named these keys in ``[bench]`` (and ``[tune] workers``): :func:`run_settings` reads them
from there when the config has no ``[run]`` section of its own.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["JOBS_HELP", "RunSettings", "parse_jobs", "run_settings"]

JOBS_HELP = (
    "Tasks at once (runs, evaluation tasks, tuning workers, encode shards), each on --threads threads "
    "(or one GPU): N, or auto = as many as the free CPU holds (usable cores minus what other processes "
    "use now, like make -l; one on a busy machine) [default: auto]. Results equal --jobs 1's."
)


def parse_jobs(value: Any) -> int | Literal["auto"]:
    """``--jobs``: a whole number >= 1 or ``auto``; a ``ValueError`` naming the flag otherwise."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise ValueError(f"--jobs {value!r}: expected a whole number >= 1 or 'auto'")


class RunSettings(BaseModel):
    """The validated ``[run]`` section (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    launcher: str = "local"
    jobs: int | Literal["auto"] = "auto"
    threads: int | None = Field(default=None, ge=1)
    device: str = "auto"
    ray_address: str | None = None
    retries: int = Field(default=1, ge=0)

    @field_validator("jobs", mode="before")
    @classmethod
    def _jobs(cls, value: Any) -> Any:
        return "auto" if value is None else parse_jobs(value)

    @field_validator("launcher")
    @classmethod
    def _launcher(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("launcher must name a launcher (fusionzoo list launchers), got ''")
        return value.strip()

    @property
    def fixed_jobs(self) -> int | None:
        """The number of tasks at once the user set (``None``: ``auto``)."""
        return None if self.jobs == "auto" else int(self.jobs)

    @property
    def task_threads(self) -> int:
        return int(self.threads or 1)


def run_settings(config: Any) -> RunSettings:
    """The ``[run]`` settings of an experiment config: its ``run`` section when it has one, else the
    older keys of ``[bench]`` (``launcher``, ``jobs``, ``threads``, ``device``, ``ray_address``) and, for
    ``jobs``, ``[tune] workers`` above 1."""
    if isinstance(config, RunSettings):
        return config
    own = getattr(config, "run", None)
    if isinstance(own, RunSettings):
        return own
    if isinstance(own, dict):
        return RunSettings.model_validate(own)
    bench = getattr(config, "bench", config)  # a whole config, or its [bench] section
    values: dict[str, Any] = {}
    for key in ("launcher", "jobs", "threads", "device", "ray_address", "retries"):
        value = getattr(bench, key, None)
        if value is not None:
            values[key] = value
    workers = getattr(getattr(config, "tune", None), "workers", 1)
    if "jobs" not in values and workers and int(workers) > 1:
        values["jobs"] = int(workers)
    return RunSettings.model_validate(values)
