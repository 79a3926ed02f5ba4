"""``local``: every run in this process, one after the other (the default launcher).

``--launcher local`` with ``--jobs N > 1`` (or the default when the machine holds several runs at once)
becomes the process pool (:mod:`fusionzoo.launch.pool`): this class is the one-job case."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fusionzoo.launch.base import Driver, Launcher, RunTask, execute_run, register_launcher


@register_launcher
class LocalLauncher(Launcher):
    """Run the tasks one by one in this process, on the threads ``--threads`` gives it.

    Each run's record reaches the driver as soon as it ends, so an interrupted grid keeps every
    finished run; Ctrl-C discards only the run in progress.
    """

    name = "local"
    description = "this machine: one run after the other in this process; with --jobs N, N at once (pool)"
    batches_seeds = True

    def run(self, tasks: list[RunTask], data_for: Callable[[str], Any], driver: Driver) -> None:
        for task in tasks:
            data = data_for(task.spec.dataset)
            record = execute_run(task, data, progress=lambda event, t=task: driver.progress(t, event))
            driver.finished(record)
