"""Static PNG renderings of the report's plotly figures, drawn with matplotlib (no browser needed).

:func:`figure_png` redraws a ``plotly.graph_objects.Figure`` made of the trace types the built-in
sections use — ``scatter`` (lines, markers, error bars), ``bar`` (grouped or stacked, error bars) and
``heatmap`` (with cell text; ``meta={"cmap": NAME}`` names the matplotlib colormap) — on axes placed at the figure's subplot domains, with axis titles,
log axes, tick labels, ``paper``-spanning rectangles and lines, subplot titles and a legend. A figure
with any other trace type returns ``None`` (the page then shows it without a static fallback, or the
section supplies its own PNG, as the Optuna section does with optuna's matplotlib plots).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

__all__ = ["SUPPORTED", "figure_png", "matplotlib_png", "mpl_colour"]

SUPPORTED = ("scatter", "bar", "heatmap")
DASHES = {"dash": "--", "dot": ":", "dashdot": "-.", "longdash": "--", "solid": "-"}
MARKERS = {"circle": "o", "square": "s", "diamond": "D", "cross": "P", "x": "X", "triangle-up": "^"}
LEFT, RIGHT, BOTTOM, TOP = 0.09, 0.97, 0.12, 0.86


def matplotlib_png(fig: Any, dpi: int = 80) -> bytes:
    """PNG bytes of a matplotlib figure (closed afterwards)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.15)
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except Exception:  # noqa: BLE001 - a Figure made without pyplot has nothing to close
        pass
    return buffer.getvalue()


def _axis_name(ref: str | None, letter: str) -> str:
    ref = ref or letter
    return f"{letter}axis{ref[1:]}"


def _values(seq: Any) -> list[Any]:
    return [] if seq is None else list(seq)


def mpl_colour(colour: Any) -> Any:
    """A plotly colour (``#hex``, ``rgb(r,g,b)``, ``rgba(r,g,b,a)``, a name) as matplotlib takes it."""
    if isinstance(colour, str) and colour.startswith(("rgb(", "rgba(")):
        values = [float(v) for v in colour[colour.index("(") + 1 : colour.rindex(")")].split(",")]
        return tuple(v / 255 for v in values[:3]) + (tuple(values[3:4]) or (1.0,))
    if isinstance(colour, (list, tuple)):
        return [mpl_colour(c) for c in colour]
    return colour


def _colour(trace: Any, index: int) -> Any:
    from fusionzoo.report.common import PALETTE

    marker = getattr(trace, "marker", None)
    colour = getattr(marker, "color", None) if marker is not None else None
    line = getattr(trace, "line", None)
    line_colour = getattr(line, "color", None) if line is not None else None
    chosen = line_colour or colour
    return mpl_colour(chosen) if chosen is not None else PALETTE[index % len(PALETTE)]


def _errors(trace: Any) -> Any:
    error = trace.error_y
    if error is None or error.array is None or error.visible is False:
        return None
    upper = np.asarray(error.array, dtype=float)
    lower = np.asarray(error.arrayminus, dtype=float) if error.arrayminus is not None else upper
    return np.vstack([lower, upper])


def _categorical(values: list[Any]) -> bool:
    return any(isinstance(v, str) for v in values)


def _place_axes(fig: Any, layout: Any, traces: list[Any], legend: bool) -> dict[tuple[str, str], Any]:
    right = 0.76 if legend else RIGHT
    axes: dict[tuple[str, str], Any] = {}
    for trace in traces:
        key = (_axis_name(trace.xaxis, "x"), _axis_name(trace.yaxis, "y"))
        if key in axes:
            continue
        xdom = list(layout[key[0]].domain or (0, 1))
        ydom = list(layout[key[1]].domain or (0, 1))
        x0 = LEFT + xdom[0] * (right - LEFT)
        y0 = BOTTOM + ydom[0] * (TOP - BOTTOM)
        width = (xdom[1] - xdom[0]) * (right - LEFT) - (0.05 if xdom[1] < 1 else 0)
        height = (ydom[1] - ydom[0]) * (TOP - BOTTOM) - (0.06 if ydom[1] < 1 else 0)
        axes[key] = fig.add_axes((x0, y0, max(width, 0.05), max(height, 0.05)))
    return axes


def _style_axis(ax: Any, xaxis: Any, yaxis: Any, grid: bool = True) -> None:
    for axis, setter in ((xaxis, "x"), (yaxis, "y")):
        title = axis.title.text if axis.title is not None else None
        if title:
            getattr(ax, f"set_{setter}label")(title, fontsize=9)
        if axis.type == "log":
            from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

            getattr(ax, f"set_{setter}scale")("log")
            target = getattr(ax, f"{setter}axis")
            target.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            target.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            target.set_minor_formatter(NullFormatter())
        if axis.tickvals is not None:
            getattr(ax, f"set_{setter}ticks")(list(axis.tickvals))
            if axis.ticktext is not None:
                rotation = 30 if setter == "x" and max(len(str(t)) for t in axis.ticktext) > 8 else 0
                getattr(ax, f"set_{setter}ticklabels")(
                    list(axis.ticktext), rotation=rotation, ha="right" if rotation else "center", fontsize=8
                )
        if axis.range is not None and axis.type != "log":
            getattr(ax, f"set_{setter}lim")(*axis.range)
    ax.tick_params(labelsize=8)
    if grid:
        ax.grid(alpha=0.3)


def _draw_scatter(ax: Any, trace: Any, colour: Any) -> Any:
    x, y = _values(trace.x), np.asarray(_values(trace.y), dtype=float)
    if not x:
        x = list(range(len(y)))
    mode = trace.mode or "lines+markers"
    line = trace.line
    dash = DASHES.get(getattr(line, "dash", None) or "solid", "-")
    symbol = getattr(trace.marker, "symbol", None) if trace.marker is not None else None
    marker = MARKERS.get(str(symbol), "o") if "markers" in mode else None
    size = getattr(trace.marker, "size", None) if trace.marker is not None else None
    msize = float(size) / 1.6 if isinstance(size, (int, float)) else 5
    colours = colour if isinstance(colour, (list, tuple)) else None
    handle = None
    if colours is not None and "lines" not in mode:
        handle = ax.scatter(x, y, c=list(colours), s=msize**2, marker=marker or "o", alpha=trace.opacity or 1)
    else:
        handle = ax.plot(
            x,
            y,
            linestyle=dash if "lines" in mode else "none",
            marker=marker,
            markersize=msize,
            color=colour,
            alpha=trace.opacity or 1,
            linewidth=1.6,
        )[0]
    errors = _errors(trace)
    if errors is not None:
        ax.errorbar(x, y, yerr=errors, fmt="none", ecolor=colours[0] if colours else colour, capsize=3, lw=1)
    return handle


def _draw_bars(ax: Any, bars: list[tuple[Any, Any]], barmode: str) -> list[Any]:
    categories: list[Any] = []
    for trace, _ in bars:
        for value in _values(trace.x):
            if value not in categories:
                categories.append(value)
    position = {c: i for i, c in enumerate(categories)}
    grouped = barmode == "group" and len(bars) > 1
    width = 0.8 / len(bars) if grouped else 0.8
    bottoms = np.zeros(len(categories))
    handles = []
    for k, (trace, colour) in enumerate(bars):
        xs = np.array([position[v] for v in _values(trace.x)], dtype=float)
        ys = np.asarray(_values(trace.y), dtype=float)
        offset = (k - (len(bars) - 1) / 2) * width if grouped else 0.0
        base = bottoms[xs.astype(int)] if barmode == "stack" else None
        handles.append(
            ax.bar(xs + offset, ys, width=width, bottom=base, color=colour, yerr=_errors(trace), capsize=2)
        )
        if barmode == "stack":
            bottoms[xs.astype(int)] += np.nan_to_num(ys)
    step = -(-len(categories) // 10)  # at most 10 labels
    ax.set_xticks(range(0, len(categories), step))
    long = max((len(str(c)) for c in categories), default=0) > 6
    ax.set_xticklabels(
        [str(c) for c in categories[::step]], rotation=30 if long else 0, ha="right" if long else "center"
    )
    return handles


def _draw_heatmap(fig: Any, ax: Any, trace: Any, reversed_y: bool) -> None:
    z = np.asarray(trace.z, dtype=float)
    meta = trace.meta if isinstance(trace.meta, dict) else {}
    cmap = str(meta.get("cmap", "viridis"))  # the matplotlib colormap a section names for its heatmap
    image = ax.imshow(
        z,
        aspect="auto",
        cmap=cmap,
        vmin=trace.zmin,
        vmax=trace.zmax,
        origin="upper" if reversed_y else "lower",
        interpolation="nearest",
    )
    x, y = _values(trace.x), _values(trace.y)
    if x:
        ax.set_xticks(range(len(x)))
        ax.set_xticklabels([str(v) for v in x], rotation=35, ha="right", fontsize=8)
    if y:
        ax.set_yticks(range(len(y)))
        ax.set_yticklabels([str(v) for v in y], fontsize=8)
    text = trace.text
    if text is not None and z.size <= 400:
        cells = np.asarray(text, dtype=object)
        for (i, j), value in np.ndenumerate(cells):
            if value not in (None, ""):
                red, green, blue, _ = (
                    image.cmap(image.norm(z[i, j])) if np.isfinite(z[i, j]) else (1, 1, 1, 1)
                )
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # text readable on the cell colour
                ax.text(
                    j, i, str(value), ha="center", va="center", fontsize=7, color="white" if dark else "black"
                )
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)


def _shapes(axes: dict[tuple[str, str], Any], layout: Any) -> None:
    first = next(iter(axes.values()))
    for shape in layout.shapes or ():
        key = (_axis_name(shape.xref if shape.xref != "paper" else None, "x"), "")
        ax = next((a for k, a in axes.items() if k[0] == key[0]), first)
        colour = mpl_colour(
            shape.fillcolor or (shape.line.color if shape.line is not None else None) or "grey"
        )
        if shape.type == "rect" and (shape.yref == "paper" or str(shape.yref).endswith("domain")):
            ax.axvspan(shape.x0, shape.x1, color=colour, lw=0)
        elif shape.type == "line" and (shape.xref == "paper" or str(shape.xref).endswith("domain")):
            dash = DASHES.get(getattr(shape.line, "dash", None) or "solid", "-")
            ax.axhline(shape.y0, color=colour, linestyle=dash, lw=1)


def figure_png(plotly_figure: Any, dpi: int = 80) -> bytes | None:
    """A static PNG of ``plotly_figure`` (see the module docstring), or ``None`` for unsupported traces."""
    import matplotlib.style

    with matplotlib.style.context("default"):  # whatever style another library set globally (optuna: ggplot)
        return _figure_png(plotly_figure, dpi)


def _figure_png(plotly_figure: Any, dpi: int) -> bytes | None:
    from matplotlib.figure import Figure

    traces = list(plotly_figure.data)
    if not traces or any(t.type not in SUPPORTED for t in traces):
        return None
    layout = plotly_figure.layout
    width, height = (layout.width or 900), (layout.height or 420)
    named = [t for t in traces if t.name and t.showlegend is not False and t.type != "heatmap"]
    legend = bool(named) and layout.showlegend is not False
    fig = Figure(figsize=(width / 100, height / 100))
    axes = _place_axes(fig, layout, traces, legend)
    handles: dict[str, Any] = {}
    bars: dict[tuple[str, str], list[tuple[Any, Any]]] = {}
    for index, trace in enumerate(traces):
        key = (_axis_name(trace.xaxis, "x"), _axis_name(trace.yaxis, "y"))
        ax, colour = axes[key], _colour(trace, index)
        if trace.type == "scatter":
            handle = _draw_scatter(ax, trace, colour)
        elif trace.type == "bar":
            bars.setdefault(key, []).append((trace, colour))
            continue
        else:
            _draw_heatmap(fig, ax, trace, layout[key[1]].autorange == "reversed")
            continue
        if trace.name and trace.showlegend is not False:
            handles.setdefault(trace.name, handle)
    for key, group in bars.items():
        for (trace, _), handle in zip(
            group, _draw_bars(axes[key], group, layout.barmode or "group"), strict=True
        ):
            if trace.name and trace.showlegend is not False:
                handles.setdefault(trace.name, handle)
    heatmaps = {(_axis_name(t.xaxis, "x"), _axis_name(t.yaxis, "y")) for t in traces if t.type == "heatmap"}
    for key, ax in axes.items():
        _style_axis(ax, layout[key[0]], layout[key[1]], grid=key not in heatmaps)
    _shapes(axes, layout)
    title = layout.title.text if layout.title is not None else None
    if title:
        fig.text(0.01, 0.97, title, fontsize=11, va="top", ha="left", weight="bold")
    for note in layout.annotations or ():
        if not note.text or note.yref != "paper":
            continue
        if note.xref == "paper":  # e.g. subplot titles
            x = LEFT + float(note.x) * ((0.76 if legend else RIGHT) - LEFT)
            fig.text(x, BOTTOM + float(note.y) * (TOP - BOTTOM) + 0.01, note.text, ha="center", fontsize=9)
        else:  # a label at a data x above the plot
            ax = next(
                (a for k, a in axes.items() if k[0] == _axis_name(note.xref, "x")), next(iter(axes.values()))
            )
            ax.text(
                float(note.x),
                float(note.y),
                note.text,
                transform=ax.get_xaxis_transform(),
                ha="center",
                fontsize=8,
            )
    if legend and handles:
        fig.legend(
            list(handles.values()), list(handles), loc="center left", bbox_to_anchor=(0.77, 0.5), fontsize=8
        )
    return matplotlib_png(fig, dpi=dpi)
