"""The report page: every section reporter laid out in ONE self-contained HTML file that opens offline.

    <head>  inline CSS, plotly.min.js inline once (the plotly package's own bundle), a tiny script
    <nav>   a table of contents; sections without their table are listed, one line each, as not shown
    <main>  one <section> per section reporter (``section_reporters()``: built-ins and plugins, in
            ``order``): figures (an interactive plotly div and its static PNG as a data: URI, shown
            when scripts are off and behind a "static image" toggle otherwise), tables (pandas
            ``Styler.to_html``; click a header to sort) and text

Nothing in the page refers to the network: no CDN, no fonts, no remote images (the plotly bundle
contains URLs for map tiles that only map traces would fetch; the report has none). A section that
raises is shown as not available with the error, so one broken plugin does not lose the report.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import itertools
import warnings
from typing import Any

from fusionzoo.report.base import Figure, Reporter, ResultsView, Section, Table, Text, register_reporter
from fusionzoo.report.base import section_reporters as all_sections

__all__ = ["HtmlReport", "render_page"]

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"format": "png"}}

CSS = """
:root { --fg:#1f2430; --muted:#667; --line:#e3e5ea; --accent:#3b5bdb; }
* { box-sizing: border-box; }
body { font-family: Helvetica, Arial, sans-serif; color: var(--fg); margin: 0; background: #fafbfc; }
header, main, nav { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 24px; }
h1 { font-size: 26px; margin: 0 0 6px; } h2 { font-size: 20px; margin: 0 0 10px; }
.meta { color: var(--muted); font-size: 13px; margin: 2px 0; }
nav { margin-top: 14px; }
nav ol { columns: 2; font-size: 14px; margin: 6px 0; }
nav .absent { color: var(--muted); font-size: 13px; margin: 4px 0 0; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 18px 20px;
  margin: 18px 0; }
figure { margin: 12px 0 18px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.fz-plot { width: 100%; }
.fz-static img { max-width: 100%; height: auto; border: 1px solid var(--line); }
.js .fz-static { display: none; }
.js figure.show-static .fz-static { display: block; }
html:not(.js) .fz-plot, html:not(.js) .fz-toggle { display: none; }
.fz-toggle { font-size: 12px; margin-left: 8px; cursor: pointer; border: 1px solid var(--line);
  background: #f3f4f7; border-radius: 4px; padding: 1px 6px; }
.fz-table-wrap { overflow-x: auto; margin: 10px 0; }
table.fz-table { border-collapse: collapse; font-size: 13px; }
table.fz-table th, table.fz-table td { border-bottom: 1px solid var(--line); padding: 4px 10px;
  text-align: right; white-space: nowrap; }
table.fz-table th { background: #f3f4f7; cursor: pointer; user-select: none; white-space: normal;
  max-width: 140px; vertical-align: bottom; }
table.fz-table th[aria-sort=ascending]::after { content: " \\25B2"; font-size: 9px; }
table.fz-table th[aria-sort=descending]::after { content: " \\25BC"; font-size: 9px; }
table.fz-table td:first-child, table.fz-table th:first-child { text-align: left; }
p.text { font-size: 14px; line-height: 1.45; max-width: 980px; }
"""

SCRIPT = """
(function () {
  function key(cell) {
    var text = cell.textContent.trim();
    var number = parseFloat(text.replace(/^[^0-9.+-]+/, ''));
    return isNaN(number) ? text.toLowerCase() : number;
  }
  document.querySelectorAll('table.fz-table').forEach(function (table) {
    var head = table.tHead; if (!head) return;
    var headers = head.rows[head.rows.length - 1].cells;
    Array.prototype.forEach.call(headers, function (th, index) {
      th.addEventListener('click', function () {
        var body = table.tBodies[0]; if (!body) return;
        var ascending = th.getAttribute('aria-sort') !== 'ascending';
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[index]), y = key(b.cells[index]);
          if (typeof x === typeof y) { return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1); }
          return typeof x === 'number' ? -1 : 1;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
  document.querySelectorAll('.fz-toggle').forEach(function (button) {
    button.addEventListener('click', function () {
      var figure = button.closest('figure');
      var on = figure.classList.toggle('show-static');
      button.textContent = on ? 'interactive' : 'static image';
      if (!on && window.Plotly) {
        figure.querySelectorAll('.js-plotly-plot').forEach(function (p) { window.Plotly.Plots.resize(p); });
      }
    });
  });
})();
"""


def _figure_html(block: Figure, ids: Any) -> str:
    import plotly.io as pio

    from fusionzoo.report.static import figure_png

    parts = ['<figure class="fz-figure">']
    png = block.png
    if block.plotly is not None:
        div_id = f"fz-plot-{next(ids)}"
        height = block.plotly.layout.height or 420
        parts.append(
            '<div class="fz-plot">'
            + pio.to_html(
                block.plotly,
                full_html=False,
                include_plotlyjs=False,
                config=PLOTLY_CONFIG,
                div_id=div_id,
                default_width="100%",
                default_height=f"{height}px",
            )
            + "</div>"
        )
        if png is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    png = figure_png(block.plotly)
                except Exception as exc:  # noqa: BLE001 - no static copy is better than no figure
                    warnings.warn(
                        f"static image of '{block.caption}' failed: {exc}", RuntimeWarning, stacklevel=2
                    )
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        alt = html.escape(block.caption or "figure", quote=True)
        parts.append(f'<div class="fz-static"><img alt="{alt}" src="data:image/png;base64,{data}"></div>')
    toggle = (
        ' <button type="button" class="fz-toggle">static image</button>'
        if png is not None and block.plotly is not None
        else ""
    )
    parts.append(f"<figcaption>{html.escape(block.caption)}{toggle}</figcaption></figure>")
    return "".join(parts)


def _numeric(column: Any) -> bool:
    """Whether a column reads as numbers ("92.6 ± 0.4", "p=0.01", "0.40M" count): right-aligned."""
    import re

    values = [str(v) for v in column if str(v) not in ("", "-", "nan", "None")]
    pattern = re.compile(r"^[<>=p ]*[-+]?\d")
    return bool(values) and all(pattern.match(v) for v in values)


def _table_html(block: Table) -> str:
    frame = block.frame
    styler = frame.style.hide(axis="index").format(escape="html", na_rep="-")
    styler = styler.format_index(escape="html", axis="columns")  # headers too (a plugin's column names)
    text_columns = [c for c in frame.columns if not _numeric(frame[c])]
    if text_columns:
        styler = styler.set_properties(subset=text_columns, **{"text-align": "left"})
    if block.bold is not None:
        marks = block.bold.reindex(index=frame.index, columns=frame.columns).fillna(False).astype(bool)
        styler = styler.apply(lambda _: marks.replace({True: "font-weight: bold", False: ""}), axis=None)
    styler = styler.set_table_attributes('class="fz-table"')
    caption = f"<figcaption>{html.escape(block.caption)}</figcaption>" if block.caption else ""
    return f'<div class="fz-table-wrap">{styler.to_html()}{caption}</div>'


def _section_html(section: Section, ids: Any) -> str:
    parts = [f'<section id="sec-{html.escape(section.name)}"><h2>{html.escape(section.title)}</h2>']
    for block in section.blocks:
        if isinstance(block, Figure):
            parts.append(_figure_html(block, ids))
        elif isinstance(block, Table):
            parts.append(_table_html(block))
        elif isinstance(block, Text):
            parts.append(f'<p class="text">{html.escape(block.text)}</p>')
        else:
            raise TypeError(f"section '{section.name}': unknown block {type(block).__name__}")
    parts.append("</section>")
    return "".join(parts)


def _header(view: ResultsView, title: str) -> str:
    from fusionzoo import __version__
    from fusionzoo.results.provenance import git_state

    commit, dirty = git_state()
    runs = view.runs
    datasets = ", ".join(sorted(map(str, runs["dataset"].unique()))) if len(runs) else "-"
    code = f" (git {commit[:10]}{' + local changes' if dirty else ''})" if commit else ""
    ok = int((runs["status"] == "ok").sum()) if len(runs) else 0
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    lines = [
        f"runs directory: {view.dir.resolve()}",
        f"{len(runs)} runs ({ok} ok) · datasets: {datasets} · ranked by {view.metric}",
        f"generated {now} by fusionzoo {__version__}{code} from the results tables only; "
        f"rebuild with: fusionzoo report {view.dir}",
        *view.versions_note(),
    ]
    meta = "".join(f'<p class="meta">{html.escape(line)}</p>' for line in lines)
    return f"<header><h1>{html.escape(title)}</h1>{meta}</header>"


def render_page(sections: list[Section], view: ResultsView, title: str = "fusionzoo report") -> str:
    """The HTML of ``sections`` (see the module docstring)."""
    shown = [s for s in sections if not s.missing]
    absent = [s for s in sections if s.missing]
    ids = itertools.count(1)
    body = "".join(_section_html(s, ids) for s in shown)
    needs_plotly = any(isinstance(b, Figure) and b.plotly is not None for s in shown for b in s.blocks)
    plotly_js = ""
    if needs_plotly:
        from plotly.offline import get_plotlyjs

        plotly_js = f"<script>{get_plotlyjs()}</script>"
    toc = "".join(f'<li><a href="#sec-{html.escape(s.name)}">{html.escape(s.title)}</a></li>' for s in shown)
    missing = "".join(
        f'<p class="absent">Not shown: {html.escape(s.title)} — {html.escape(s.missing)}</p>' for s in absent
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style>"
        "<script>document.documentElement.classList.add('js');</script>"
        f"{plotly_js}</head><body>{_header(view, title)}"
        f'<nav id="contents"><h2>Contents</h2><ol>{toc}</ol>{missing}</nav>'
        f"<main>{body}</main><script>{SCRIPT}</script></body></html>\n"
    )


def render_sections(view: ResultsView, pattern: str = "*") -> list[Section]:
    """Every section reporter's :class:`Section` (a reporter that raises becomes an absent section)."""
    out = []
    for reporter in all_sections(pattern):
        try:
            section = reporter.render(view, "section")
        except Exception as exc:  # noqa: BLE001 - one broken section must not lose the whole report
            section = Section.absent(reporter, f"error: {type(exc).__name__}: {exc}")
        out.append(section)
    return out


@register_reporter
class HtmlReport(Reporter):
    """The whole report of a :class:`ResultsView` as one self-contained HTML page (a string)."""

    name = "html"
    description = "one self-contained offline HTML page with every section reporter"
    formats = ("html",)

    def render(self, view: ResultsView, fmt: str = "html", sections: str = "*", **_: Any) -> str:
        return render_page(render_sections(view, sections), view)
