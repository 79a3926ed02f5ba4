"""``local``: every run in this process, one after the other (the default launcher)."""

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
    description = "runs one after the other in this process"

    def run(self, tasks: list[RunTask], data_for: Callable[[str], Any], driver: Driver) -> None:
        for task in tasks:
            data = data_for(task.spec.dataset)
            record = execute_run(task, data, progress=lambda event, t=task: driver.progress(t, event))
            driver.finished(record)
