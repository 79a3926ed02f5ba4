"""What :func:`fusionzoo.bench`, :func:`fusionzoo.evaluate` and :func:`fusionzoo.load_results` return:
the runs of a runs directory as pandas tables, read from its results tables only (as every report is).

    results = fusionzoo.load_results("runs/quick")
    results.leaderboard          # one row per configuration, leaderboard order (the printed leaderboard)
    results.runs                 # one row per run: identity columns, status, every metric column
    results.report("quick.html") # the HTML report (fusionzoo report)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fusionzoo.config import ConfigError
from fusionzoo.results.store import RESULTS_FILE, ResultsStore

__all__ = ["LEADERBOARD_FIRST", "Results", "load_results"]

# the leaderboard's columns in the printed order; the statistics' other columns follow
LEADERBOARD_FIRST = ["dataset", "rank", "fusion", "head", "n", "mean", "ci", "macro_f1", "macro_f1_ci",
                     "p_adjusted", "significant", "params", "train_time"]  # fmt: skip


def _first(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame`` (index reset) with ``columns`` (those it has) first, the others after in their order."""
    lead = [c for c in dict.fromkeys(columns) if c in frame.columns]
    return frame[lead + [c for c in frame.columns if c not in lead]].reset_index(drop=True)


@dataclass
class Results:
    """The runs of ``runs_dir`` (only ``run_ids`` when given: those of one call), ranked by ``metric``.

    Every table is read when asked for, so a ``Results`` kept in a notebook shows runs recorded later
    (another call, a command line) on the same directory. ``failed`` maps a run that failed in the call
    that made this object to its error; ``problems`` lists what an evaluation could not evaluate."""

    runs_dir: Path
    metric: str = "test_accuracy"
    run_ids: frozenset[str] | None = None
    data_version: str | None = None
    failed: dict[str, str] = field(default_factory=dict)
    problems: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.runs_dir = Path(self.runs_dir)
        if not self.metric.startswith(("test_", "val_")):
            self.metric = f"test_{self.metric}"

    @property
    def store(self) -> ResultsStore:
        return ResultsStore(self.runs_dir)

    def view(self) -> Any:
        """The :class:`~fusionzoo.report.base.ResultsView` every reporter reads (one data version per
        dataset: the latest, or ``data_version``)."""
        from fusionzoo.report.base import ResultsView

        return ResultsView.of(self.store, None if self.run_ids is None else set(self.run_ids), self.metric,
                              self.data_version)  # fmt: skip

    @property
    def runs(self) -> pd.DataFrame:
        """One row per run (``results.parquet``): dataset, fusion, head, seed, run/config ids, status,
        train time, parameters and every metric column (``test_accuracy``, ``val_macro_f1``, ...)."""
        return _first(self.view().runs, ["dataset", "fusion", "head", "seed", "status", self.metric])

    @property
    def leaderboard(self) -> pd.DataFrame:
        """One row per configuration in leaderboard order, per dataset: ``rank``, ``fusion``, ``head``,
        ``n`` (seeds with a result), ``mean`` and ``ci`` (95% t-interval half-width) of the metric,
        ``p_adjusted``/``significant`` (Holm-adjusted test against the best), ``params``,
        ``train_time``, ``macro_f1`` and, when evaluated, GFLOPs, latency and robustness columns: the
        numbers of the printed leaderboard (and of ``fusionzoo report --format csv``), unformatted."""
        from fusionzoo.report.leaderboard_table import leaderboard_numbers

        return _first(leaderboard_numbers(self.view()), LEADERBOARD_FIRST)

    @property
    def history(self) -> pd.DataFrame:
        """Per-epoch rows of these runs (``history.parquet``): losses and validation metrics."""
        return self.view().history.reset_index(drop=True)

    @property
    def robustness(self) -> pd.DataFrame | None:
        """Run × protocol × level rows (``robustness.parquet``, written by :func:`fusionzoo.evaluate`)."""
        return self.view().table("robustness")

    @property
    def efficiency(self) -> pd.DataFrame | None:
        """Per-configuration efficiency rows (``efficiency.parquet``: params, GFLOPs, latency, ...)."""
        return self.view().table("efficiency")

    def report(self, path: str | Path | None = None, fmt: str = "html", sections: str = "*") -> Path:
        """Write the report of these runs (``fusionzoo report``): ``html`` (one self-contained page), or
        the leaderboard as ``md``, ``latex`` or ``csv``; default path ``<runs_dir>/report.<suffix>``."""
        from fusionzoo.report.output import FORMATS, SUFFIXES, write_report

        if fmt not in FORMATS:
            raise ConfigError(f"Results.report(): fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return write_report(self.view(), path or self.runs_dir / f"report{SUFFIXES[fmt]}", fmt, sections)

    def __repr__(self) -> str:
        runs = self.runs
        ok = int((runs["status"] == "ok").sum()) if len(runs) else 0
        return (
            f"Results({str(self.runs_dir)!r}: {len(runs)} runs, {ok} ok, metric {self.metric}"
            + (f", {len(self.failed)} failed in this call" if self.failed else "")
            + ")"
        )

    def _repr_html_(self) -> str:  # Jupyter shows the leaderboard
        return f"<p>{self!r}</p>" + self.leaderboard.to_html(max_rows=50)


def load_results(
    runs_dir: str | Path, metric: str = "test_accuracy", data_version: str | None = None
) -> Results:
    """The :class:`Results` of every run in ``runs_dir`` (a bench ``out`` directory).

    ``data_version``: a data fingerprint (or its first characters) to show instead of each dataset's
    latest. Raises ``ConfigError`` when ``runs_dir`` has no results table, ``ResultsSchemaError`` when
    it is not one fusionzoo wrote."""
    path = Path(runs_dir)
    if not (path / RESULTS_FILE).is_file():
        raise ConfigError(
            f"load_results(): {path} has no {RESULTS_FILE}; pass the out directory of a bench "
            "(fusionzoo.bench(...) or fusionzoo bench; the default is runs/<preset or dataset>)"
        )
    results = Results(path, metric, data_version=data_version)
    results.store.load()  # a table of another schema fails now, naming the file
    runs = results.view().runs  # and so does an unknown data_version
    if len(runs) and results.metric not in runs.columns:
        available = ", ".join(sorted(c for c in runs.columns if c.startswith(("test_", "val_"))))
        raise ConfigError(
            f"load_results(): metric {results.metric!r} is not a column of {path}; available: {available}"
        )
    return results
