"""A terminal table that fits the console width without ever truncating a number.

Each :class:`Column` has a priority (lower = kept longer). :func:`fit_columns` gives every numeric
column the width of its widest cell (and of the longest word of its title, which wraps at spaces),
wraps text cells (configuration names) at their separators (``,`` ``:`` ``+`` ``@`` spaces) to a
bounded width, and drops the lowest-priority columns until the table fits; :func:`print_fitted`
prints the table and, when columns were dropped, one line naming them and how to see them. The
widths are fixed (``min_width = max_width``), so rich never shortens a cell to "92.…".

A rich table with the default box and padding is ``Σ widths + 3 · columns + 1`` characters wide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Column", "fit_columns", "print_fitted", "table_width", "wrap_label"]

TEXT_WIDTH = 18  # configuration names wrap at this width (narrower only when nothing else fits)
MIN_TEXT_WIDTH = 8
SEPARATORS = re.compile(r"(?<=[,:+@ =])")


@dataclass
class Column:
    """One column: its title, its cells (strings), its priority (lower = kept longer), whether its
    cells are numbers (never wrapped, never cut) or text (wrapped at separators), and its alignment."""

    title: str
    cells: list[str]
    priority: int
    numeric: bool = True
    justify: str = "right"
    width: int = field(default=0, init=False)


def wrap_label(text: str, width: int) -> str:
    """``text`` broken into lines of at most ``width`` characters at its separators (a piece longer
    than ``width`` is folded), e.g. ``fluid:layers=1,queries=8`` -> ``fluid:layers=1,`` / ``queries=8``."""
    lines: list[str] = []
    for paragraph in str(text).split("\n"):
        line = ""
        for piece in SEPARATORS.split(paragraph):
            while len(piece) > width:  # one piece wider than the column: fold it
                if line:
                    lines.append(line)
                    line = ""
                lines.append(piece[:width])
                piece = piece[width:]
            if len(line) + len(piece) > width:
                lines.append(line)
                line = ""
            line += piece
        lines.append(line)
    return "\n".join(s.rstrip() for s in lines)


def _width(column: Column, text_width: int) -> int:
    title = max((len(w) for w in column.title.split()), default=0)
    if column.numeric:
        return max([title, *(len(c) for c in column.cells)])
    cells = max((len(c) for c in column.cells), default=0)
    return max(title, min(cells, text_width))


def table_width(columns: list[Column]) -> int:
    """Characters a rich table of ``columns`` (their ``width``) takes with the default box."""
    return sum(c.width for c in columns) + 3 * len(columns) + 1


def fit_columns(columns: list[Column], width: int) -> tuple[list[Column], list[Column]]:
    """(the columns shown, in their given order, with ``width`` set; the columns dropped): drop the
    lowest-priority column until the table fits in ``width`` (text narrowed to its minimum first when
    only the top-priority columns are left); at least the highest-priority two are always kept."""
    shown = list(columns)
    text_width = TEXT_WIDTH
    while True:
        for column in shown:
            column.width = _width(column, text_width)
        if table_width(shown) <= width:
            break
        if len(shown) > 2:
            shown.remove(max(shown, key=lambda c: c.priority))
        elif text_width > MIN_TEXT_WIDTH:
            text_width -= 1
        else:
            break  # narrower than two columns: rich folds what it must
    spare = width - table_width(shown)
    for column in shown:  # room left: configuration names on fewer lines
        if not column.numeric and spare > 0:
            full = max((len(c) for c in column.cells), default=0)
            grow = max(0, min(spare, full - column.width))
            column.width += grow
            spare -= grow
    hidden = [c for c in columns if c not in shown]
    return shown, hidden


def print_fitted(
    console: Any,
    columns: list[Column],
    title: str,
    row_styles: list[str | None] | None = None,
    hint: str = "",
) -> list[Column]:
    """Print ``columns`` as a rich table fitted to ``console.width``; returns the hidden columns (a
    line names them and ``hint``, how to see them, when there are any)."""
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    shown, hidden = fit_columns(columns, console.width)
    table = Table(title=title, title_justify="left")
    for column in shown:
        table.add_column(
            column.title,
            justify=column.justify,  # type: ignore[arg-type]
            min_width=column.width,
            max_width=column.width,
            overflow="fold",  # titles wrap at spaces; cells fit their width, so nothing is cut
        )
    rows = len(columns[0].cells) if columns else 0
    styles = row_styles or [None] * rows
    for i in range(rows):
        cells = [
            Text(c.cells[i] if c.numeric else wrap_label(c.cells[i], c.width), overflow="fold") for c in shown
        ]
        table.add_row(*cells, style=styles[i])
    console.print(table)
    if hidden:
        names = ", ".join(c.title for c in hidden)
        console.print(
            f"[dim]{len(hidden)} column{'s' if len(hidden) > 1 else ''} hidden at this width "
            + escape(f"({names})" + (f": {hint}" if hint else ""))
            + "[/dim]"
        )
    return hidden
