"""The reporter interface, the view of results every reporter reads, and the blocks a report section holds.

    @register_reporter
    class Leaderboard(Reporter):
        name = "leaderboard"
        formats = ("terminal",)
        def render(self, view: ResultsView, fmt: str, console=None) -> Any: ...

    @register_reporter
    class GateHistogram(Reporter):          # a section of `fusionzoo report` (format "section")
        name = "gate_histogram"
        title = "Gate values"
        formats = ("section",)
        order = 75                           # place in the report (built-ins use 10 … 130)
        def render(self, view, fmt="section", **_) -> Section:
            frame = view.table("diagnostics")
            if frame is None:
                return Section.absent(self, "no diagnostics.parquet in the runs directory")
            return Section.of(self, Figure(plotly_figure), Table(frame))

A reporter reads only the results tables (through :class:`ResultsView`), never live models, so any
output can be rebuilt later from a runs directory. Section reporters return a :class:`Section` of
:class:`Figure` / :class:`Table` / :class:`Text` blocks; the ``html`` reporter lays every registered
section reporter out in one self-contained page (a third-party reporter registered through the
``fusionzoo.reporters`` entry points, or ``--plugin``, appears there too).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from fusionzoo.registry import REGISTRIES

__all__ = [
    "Figure",
    "Reporter",
    "ResultsView",
    "Section",
    "Table",
    "Text",
    "register_reporter",
    "section_reporters",
]


def register_reporter(obj: Any = None, *, name: str | None = None) -> Any:
    """Register a reporter class (bare or ``@register_reporter("name")``)."""
    return REGISTRIES["reporter"].register(obj, name=name)


# tables of a runs directory besides results/history (fusionzoo/results/store.py, SCHEMAS):
# name -> the columns a file must have to be used
OPTIONAL_TABLES: dict[str, tuple[str, ...]] = {
    "robustness": ("run_id", "protocol", "level"),
    "efficiency": ("fusion", "head"),
    "diagnostics": ("run_id", "name", "kind", "bin", "value"),
    "classes": ("data_fingerprint", "class_id", "train_count", "bucket"),
    "provenance": ("invocation", "started_at", "command"),
}


@dataclass
class ResultsView:
    """The runs (and their predictions) a reporter shows, and the metric to rank by.

    ``runs``: rows of the results table; ``store``: the :class:`~fusionzoo.results.store.ResultsStore`
    they came from (predictions, history, the other tables); ``metric``: a ``test_``/``val_`` column.
    :meth:`table` reads the optional tables (``robustness``, ``efficiency``, ``diagnostics``,
    ``classes``, ``provenance``) restricted to these runs, or ``None`` when the file is absent.
    """

    runs: pd.DataFrame
    store: Any
    metric: str = "test_accuracy"
    versions: list[Any] = field(default_factory=list)
    other_versions: list[Any] = field(default_factory=list)
    curve_runs: pd.DataFrame | None = None  # every training fraction's runs (learning curves)

    @classmethod
    def of(
        cls,
        store: Any,
        run_ids: set[str] | None = None,
        metric: str = "test_accuracy",
        data_version: str | None = None,
    ) -> ResultsView:
        """The runs of ``store`` (only ``run_ids`` when given), one data version per dataset: the latest,
        or ``data_version`` (a fingerprint or its prefix) where a dataset has it
        (:func:`fusionzoo.results.versions.pick_versions`; ``other_versions`` are the ones left out)."""
        from fusionzoo.results.versions import pick_versions

        frame = store.load()
        if run_ids is not None:
            frame = frame[frame["run_id"].astype(str).isin(run_ids)]
        frame, shown, left_out = pick_versions(frame, data_version)
        return cls(full_size(frame), store, metric, shown, left_out, curve_runs=frame)

    def versions_note(self) -> list[str]:
        """Lines naming the data versions this view leaves out (none when every dataset has one)."""
        from fusionzoo.results.versions import versions_note

        return versions_note(self.versions, self.other_versions, f"fusionzoo report {self.dir}")

    @property
    def dir(self) -> Path:
        return Path(self.store.dir)

    @functools.cached_property
    def history(self) -> pd.DataFrame:
        """Per-epoch rows of these runs (``history.parquet``)."""
        frame = self.store.load_history()
        return frame[frame["run_id"].astype(str).isin(set(self.runs["run_id"].astype(str)))]

    @functools.cached_property
    def ok(self) -> pd.DataFrame:
        """The runs that finished with test metrics (status ``ok``)."""
        return self.runs[self.runs["status"] == "ok"]

    def table(self, name: str) -> pd.DataFrame | None:
        """Optional table ``name`` of the runs directory, restricted to these runs; ``None`` if absent."""
        cache = self.__dict__.setdefault("_tables", {})
        if name not in cache:
            cache[name] = self._read(name)
        return cache[name]

    def _read(self, name: str) -> pd.DataFrame | None:
        from fusionzoo.results.store import read_table

        path = self.dir / f"{name}.parquet"
        if not path.exists():
            return None
        frame = read_table(path, OPTIONAL_TABLES.get(name, ()))
        runs = self.runs
        if "run_id" in frame.columns and name != "provenance":
            frame = frame[frame["run_id"].astype(str).isin(set(runs["run_id"].astype(str)))]
        elif name == "classes":
            frame = frame[frame["data_fingerprint"].isin(set(runs["data_fingerprint"]))]
        elif name == "efficiency":
            pairs = set(zip(runs["fusion"], runs["head"], strict=True))
            frame = frame[[p in pairs for p in zip(frame["fusion"], frame["head"], strict=True)]]
        return frame.reset_index(drop=True)

    def summary(self, metric: str | None = None) -> pd.DataFrame:
        """``fusionzoo.results.stats.summarize`` of these runs (cached per metric): the leaderboard rows."""
        from fusionzoo.results.stats import summarize

        metric = metric or self.metric
        cache = self.__dict__.setdefault("_summaries", {})
        if metric not in cache:
            cache[metric] = summarize(
                self.runs, metric, predictions=self.store.predictions, direction=self.direction(metric)
            )
        return cache[metric]

    def direction(self, metric: str | None = None) -> str:
        """``"max"`` or ``"min"``: how the metric ranks (the metric registry's direction of the column)."""
        from fusionzoo.metrics.base import column_direction
        from fusionzoo.registry import RegistryError

        try:
            return column_direction(metric or self.metric)
        except RegistryError:  # a column no registered metric declares: higher is better
            return "max"


def full_size(frame: pd.DataFrame) -> pd.DataFrame:
    """The runs at each dataset's largest training fraction (``bench --train-fractions``): what the
    leaderboards rank; the smaller fractions are the learning curves' (``ResultsView.curve_runs``)."""
    if "train_fraction" not in frame.columns or not len(frame):
        return frame
    fraction = pd.to_numeric(frame["train_fraction"], errors="coerce").fillna(1.0)
    largest = fraction.groupby(frame["dataset"]).transform("max")
    return frame[fraction == largest]


class Reporter:
    """Base class of reporters: ``name``, the ``formats`` it can render, and :meth:`render`.

    Section reporters (``"section"`` in ``formats``) also declare a ``title`` and an ``order`` (their
    place in the report) and return a :class:`Section` from ``render(view, "section")``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    formats: ClassVar[tuple[str, ...]] = ("terminal",)
    title: ClassVar[str] = ""
    order: ClassVar[int] = 100

    def render(self, view: ResultsView, fmt: str, **context: Any) -> Any:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} must implement render()")


# ------------------------------------------------------------------------------ blocks of a section
@dataclass
class Figure:
    """An interactive plotly figure and its static PNG (made from the figure by the page when ``None``)."""

    plotly: Any = None
    png: bytes | None = None
    caption: str = ""


@dataclass
class Table:
    """A table rendered from a data frame (sortable in the page); ``bold`` marks cells (same shape)."""

    frame: pd.DataFrame
    caption: str = ""
    bold: pd.DataFrame | None = None


@dataclass
class Text:
    """A paragraph of plain text (escaped by the page)."""

    text: str


@dataclass
class Section:
    """One section of the report: a title, its blocks, and ``missing`` (why it is absent, if it is)."""

    name: str
    title: str
    blocks: list[Figure | Table | Text] = field(default_factory=list)
    missing: str = ""

    @classmethod
    def of(cls, reporter: Reporter, *blocks: Figure | Table | Text) -> Section:
        return cls(reporter.name, reporter.title or reporter.name, list(blocks))

    @classmethod
    def absent(cls, reporter: Reporter, why: str) -> Section:
        return cls(reporter.name, reporter.title or reporter.name, [], why)


def section_reporters(pattern: str = "*") -> list[Reporter]:
    """Every registered section reporter matching ``pattern``, in report order (then by name)."""
    out = []
    for name in REGISTRIES["reporter"].list(pattern):
        cls = REGISTRIES["reporter"].get(name).obj
        if "section" in getattr(cls, "formats", ()):
            out.append(REGISTRIES["reporter"].create(name))
    return sorted(out, key=lambda r: (r.order, r.name))
