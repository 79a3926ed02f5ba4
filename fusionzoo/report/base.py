"""The reporter interface and the view of results every reporter reads.

    @register_reporter
    class Leaderboard(Reporter):
        name = "leaderboard"
        formats = ("terminal",)
        def render(self, view: ResultsView, fmt: str, console=None) -> Any: ...

A reporter reads only the results tables (through :class:`ResultsView`), never live models, so any
output can be rebuilt later from a runs directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from fusionzoo.registry import REGISTRIES

__all__ = ["Reporter", "ResultsView", "register_reporter"]


def register_reporter(obj: Any = None, *, name: str | None = None) -> Any:
    """Register a reporter class (bare or ``@register_reporter("name")``)."""
    return REGISTRIES["reporter"].register(obj, name=name)


@dataclass
class ResultsView:
    """The runs (and their predictions) a reporter shows, and the metric to rank by.

    ``runs``: rows of the results table; ``store``: the :class:`~fusionzoo.bench.results.ResultsStore`
    they came from (predictions, history); ``metric``: a ``test_``/``val_`` column.
    """

    runs: pd.DataFrame
    store: Any
    metric: str = "test_accuracy"

    @classmethod
    def of(cls, store: Any, run_ids: set[str] | None = None, metric: str = "test_accuracy") -> ResultsView:
        frame = store.load()
        if run_ids is not None:
            frame = frame[frame["run_id"].astype(str).isin(run_ids)]
        return cls(frame, store, metric)


class Reporter:
    """Base class of reporters: ``name``, the ``formats`` it can render, and :meth:`render`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    formats: ClassVar[tuple[str, ...]] = ("terminal",)

    def render(self, view: ResultsView, fmt: str, **context: Any) -> Any:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} must implement render()")
