"""``local``: every task in this process, one after the other (the default launcher).

``--launcher local`` with ``--jobs N > 1`` (or ``--jobs auto`` when the free CPU holds several tasks at
once) becomes the process pool (:mod:`fusionzoo.launch.pool`): this class is the one-job case."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fusionzoo.launch.base import (
    Driver,
    Launcher,
    TaskContext,
    as_records,
    idle,
    inputs_of,
    register_launcher,
)


@register_launcher
class LocalLauncher(Launcher):
    """Run the tasks one by one in this process, on the threads ``--threads`` gives it.

    Each task's record reaches the driver as soon as it ends, so an interrupted grid keeps every
    finished task; Ctrl-C discards only the task in progress.
    """

    name = "local"
    description = "this machine: one task after the other in this process; with --jobs N, N at once (pool)"
    batches_seeds = True

    def __init__(self, device: str = "auto") -> None:
        self.device = device

    def run(self, tasks: list[Any], inputs_for: Callable[[str], Any], driver: Driver) -> None:
        datas: dict[str, Any] = {}
        for task in tasks:
            if task.input is not None and task.input not in datas:
                datas.update(inputs_of([task], inputs_for))
            progress = _progress_to(driver, task)
            context = TaskContext(datas.get(task.input), progress, self.device)
            for record in as_records(task.execute(context)):
                driver.finished(record)
            idle(driver)


def _progress_to(driver: Driver, task: Any) -> Callable[[dict[str, Any]], None]:
    def forward(event: dict[str, Any]) -> None:
        driver.progress(task, event)
        idle(driver)

    return forward
