"""``fusionzoo report RUNS_DIR``: the report of a runs directory, built only from its results tables."""

from __future__ import annotations

import difflib
import time
from pathlib import Path

import click

from fusionzoo.cli.common import plugin_option
from fusionzoo.cli.errors import Command, about

FORMAT_CHOICES = ("html", "md", "latex", "csv")


@click.command("report", cls=Command)
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
@click.option(
    "--data-version",
    default="latest",
    show_default=True,
    metavar="FINGERPRINT",
    help="Runs of a dataset on several data versions (its files, options or encoders changed between "
    "benches): show this one (a data fingerprint or its first characters; the note under the command "
    "names them) instead of the latest. Versions are never ranked together.",
)
@plugin_option
def report(
    runs_dir: Path,
    out: Path | None,
    fmt: str,
    metric: str,
    sections: str,
    data_version: str,
    plugins: tuple[str, ...],
) -> None:
    """Write the report of RUNS_DIR (a bench or tune --out directory).

    \b
    Examples:
      fusionzoo report runs/quick                     # runs/quick/report.html
      fusionzoo report runs/quick --format latex      # the leaderboard as a LaTeX table (needs booktabs)
      fusionzoo report runs/quick --plugin my_section.py
    """
    from fusionzoo.report.base import ResultsView, section_reporters
    from fusionzoo.report.optuna_studies import find_storages
    from fusionzoo.report.output import SUFFIXES, write_report
    from fusionzoo.results.store import ResultsStore
    from fusionzoo.results.versions import VersionError

    if not runs_dir.is_dir():
        raise click.BadParameter(
            f"{runs_dir} does not exist; pass the --out directory of a bench or tune run",
            param_hint="RUNS_DIR",
        )
    if fmt == "html" and not section_reporters(sections):
        raise click.BadParameter(
            f"'{sections}' matches no section; the sections are {', '.join(section_names())}"
            + did_you_mean(sections, section_names()),
            param_hint="--sections",
        )
    if fmt != "html" and sections != "*":
        raise click.BadParameter(
            f"--sections chooses sections of the HTML report; --format {fmt} writes the leaderboard table",
            param_hint="--sections",
        )
    store = ResultsStore(runs_dir)
    metric = metric if metric.startswith(("test_", "val_")) else f"test_{metric}"
    with about("--data-version", VersionError):  # a version the runs directory does not have
        view = ResultsView.of(store, None, metric, data_version)
    if len(view.runs) and metric not in view.runs.columns:
        available = ", ".join(sorted(c for c in view.runs.columns if c.startswith(("test_", "val_"))))
        raise click.BadParameter(
            f"'{metric}' is not a column of {store.results_path}; available: {available}",
            param_hint="--metric",
        )
    if not len(view.runs) and (fmt != "html" or not find_storages(runs_dir)):
        what = "" if fmt != "html" else " and no Optuna study"
        raise click.ClickException(
            f"{runs_dir} has no runs in {store.results_path.name}{what}: nothing to report. Pass the --out "
            "directory of a bench or tune run"
        )
    for run_id in view.ok["run_id"].astype(str):  # a corrupt file: one clear error before any work
        store.predictions(run_id)
    for line in view.versions_note():
        click.echo(f"note: {line}")
    started = time.perf_counter()
    try:
        path = write_report(view, out or runs_dir / f"report{SUFFIXES[fmt]}", fmt, sections=sections)
    except OSError as exc:
        raise click.ClickException(f"cannot write the report: {exc}") from None
    click.echo(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - started:.1f} s)")


def section_names() -> list[str]:
    """The registered report sections, in report order."""
    from fusionzoo.report.base import section_reporters

    return [r.name for r in section_reporters()]


def did_you_mean(pattern: str, names: list[str]) -> str:
    close = difflib.get_close_matches(pattern.strip("*"), names, n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
