"""``fusionzoo report RUNS_DIR``: the report of a runs directory, built only from its results tables."""

from __future__ import annotations

import time
from pathlib import Path

import click

from fusionzoo.cli_common import plugin_option

FORMAT_CHOICES = ("html", "md", "latex", "csv")


@click.command("report")
@click.argument("runs_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output file [default: RUNS_DIR/report.html, .md, .tex or .csv].",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMAT_CHOICES),
    default="html",
    show_default=True,
    help="html: the whole report in one self-contained page that opens offline; md, latex, csv: "
    "the leaderboard (and robustness/efficiency summaries) as a paper table.",
)
@click.option(
    "--metric",
    default="test_accuracy",
    show_default=True,
    help="Rank by this results column (test_ prefixed when given bare).",
)
@click.option(
    "--sections",
    default="*",
    show_default=True,
    metavar="PATTERN",
    help="HTML: only the section reporters whose name matches (fnmatch), e.g. 'leaderboard*'.",
)
@plugin_option
def report(
    runs_dir: Path, out: Path | None, fmt: str, metric: str, sections: str, plugins: tuple[str, ...]
) -> None:
    """Write the report of RUNS_DIR (a bench or tune --out directory).

    \b
    Examples:
      fusionzoo report runs/quick                     # runs/quick/report.html
      fusionzoo report runs/quick --format latex      # the leaderboard as a LaTeX table
      fusionzoo report runs/quick --plugin my_section.py
    """
    from fusionzoo.bench.results import ResultsSchemaError, ResultsStore
    from fusionzoo.report.base import ResultsView
    from fusionzoo.report.output import SUFFIXES, write_report

    if not runs_dir.is_dir():
        raise click.BadParameter(
            f"{runs_dir} does not exist; pass the --out directory of a bench or tune run",
            param_hint="RUNS_DIR",
        )
    try:
        store = ResultsStore(runs_dir)
    except ResultsSchemaError as exc:
        raise click.ClickException(str(exc)) from None
    metric = metric if metric.startswith(("test_", "val_")) else f"test_{metric}"
    view = ResultsView.of(store, None, metric)
    if len(view.runs) and metric not in view.runs.columns:
        available = ", ".join(sorted(c for c in view.runs.columns if c.startswith(("test_", "val_"))))
        raise click.BadParameter(
            f"'{metric}' is not a column of {store.results_path}; available: {available}",
            param_hint="--metric",
        )
    if fmt != "html" and not len(view.runs):
        raise click.ClickException(f"{store.results_path} has no runs: nothing to tabulate")
    started = time.perf_counter()
    try:
        path = write_report(view, out or runs_dir / f"report{SUFFIXES[fmt]}", fmt, sections=sections)
    except OSError as exc:
        raise click.ClickException(f"cannot write the report: {exc}") from None
    click.echo(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - started:.1f} s)")
