"""Write a report of a :class:`~fusionzoo.report.base.ResultsView` to a file: HTML or a paper table.

    html           the ``html`` reporter: one self-contained page with every section reporter
    latex, md, csv the ``leaderboard_table`` reporter: the leaderboard (plus robustness/efficiency
                   summaries when their tables exist) as a paper-ready table, and for a suite (two
                   or more datasets) the ``suite`` reporter's cross-dataset summary after it (csv:
                   in ``<name>.suite.csv`` beside it)

``fusionzoo report`` and ``fusionzoo bench --report`` both call :func:`write_report`.
"""

from __future__ import annotations

from pathlib import Path

from fusionzoo import registry
from fusionzoo.io import atomic_write
from fusionzoo.report.base import ResultsView

__all__ = ["FORMATS", "SUFFIXES", "write_report"]

FORMATS = {
    "html": "html",
    "latex": "leaderboard_table",
    "md": "leaderboard_table",
    "csv": "leaderboard_table",
}
SUFFIXES = {"html": ".html", "latex": ".tex", "md": ".md", "csv": ".csv"}


def write_report(view: ResultsView, path: str | Path, fmt: str = "html", sections: str = "*") -> Path:
    """Render ``view`` in ``fmt`` and write it atomically to ``path``; returns the path."""
    if fmt not in FORMATS:
        raise ValueError(f"format '{fmt}' is not one of {', '.join(FORMATS)}")
    reporter = registry.create("reporter", FORMATS[fmt])
    text = reporter.render(view, fmt, sections=sections) if fmt == "html" else reporter.render(view, fmt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suite = "" if fmt == "html" else registry.create("reporter", "suite").render(view, fmt)
    if suite and fmt == "csv":  # a second table: its own file beside the leaderboard's
        atomic_write(suite_csv_path(path), suite.encode("utf-8"))
    elif suite:
        text += "\n" + suite
    atomic_write(path, text.encode("utf-8"))
    return path


def suite_csv_path(path: str | Path) -> Path:
    """Where ``--format csv`` writes the cross-dataset summary of a suite: ``<name>.suite.csv``."""
    path = Path(path)
    return path.with_name(path.stem + ".suite.csv")
