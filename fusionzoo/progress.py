"""The one rich progress display of fusionzoo (encode, download, bench grid, tune trials).

:func:`progress_bar` returns a ``rich.progress.Progress`` with the columns every long job shows:

    ⠋ encode images train ━━━━━━━━━━━━━━━━━━━━ 812/1046 31 items/s 0:00:26 0:00:08

spinner, description, bar, done/total (``M/N``; bytes as ``1.2/4.0 GB`` for ``unit="bytes"``), the
rate (``items/s``, ``runs/s``, ``MB/s``), elapsed and remaining time. ``enabled=False`` gives the same
object with nothing drawn (``add_task``/``advance`` still work), so callers never branch on quiet mode.
Print through ``progress.console`` so log lines appear above the bars.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

__all__ = ["RateColumn", "progress_bar", "tqdm_for"]


class RateColumn(ProgressColumn):
    """Completed units per second (``31 items/s``; two decimals below 10, ``-`` before the first).

    A task's own ``unit`` field (``progress.add_task(..., unit="steps")``) overrides the column's."""

    def __init__(self, unit: str = "items") -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", self.unit)
        speed = task.finished_speed or task.speed
        if not speed and task.elapsed and task.completed:
            speed = task.completed / task.elapsed
        if not speed:
            return Text(f"- {unit}/s", style="progress.data.speed")
        shown = f"{speed:,.0f}" if speed >= 10 else f"{speed:.2f}"
        return Text(f"{shown} {unit}/s", style="progress.data.speed")


def progress_bar(
    console: Console | None = None,
    *,
    enabled: bool = True,
    unit: str = "items",
    transient: bool = False,
    **options: Any,
) -> Progress:
    """A rich ``Progress`` with fusionzoo's columns; ``unit="bytes"`` shows sizes and transfer speed.

    ``options`` go to ``Progress`` (e.g. ``refresh_per_second``). Use it as a context manager.
    """
    if unit == "bytes":
        counts: tuple[ProgressColumn, ...] = (DownloadColumn(), TransferSpeedColumn())
    else:
        counts = (MofNCompleteColumn(), RateColumn(unit))
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        *counts,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=transient,
        **options,
    )


def tqdm_for(progress: Progress) -> type:
    """A ``tqdm`` class whose bars are tasks of ``progress``, for libraries that take ``tqdm_class``
    (``huggingface_hub.hf_hub_download``, ``http_get``): their byte counts then show in our display."""
    from tqdm.std import tqdm

    class RichTqdm(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs["disable"] = True  # tqdm draws nothing; rich does
            super().__init__(*args, **kwargs)
            self.n = int(kwargs.get("initial") or 0)
            self.task = progress.add_task(
                str(kwargs.get("desc") or ""), total=kwargs.get("total"), completed=self.n
            )

        def update(self, n: float | None = 1) -> bool | None:
            self.n += int(n or 0)
            progress.update(self.task, total=self.total, completed=self.n)
            return None

    return RichTqdm
