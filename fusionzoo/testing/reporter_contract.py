"""The reporter contract: :func:`check_reporter`, and :func:`example_results` (a hand-built runs table).

    from fusionzoo.testing import check_reporter
    check_reporter("leaderboard")       # a registered name/spec, a Reporter subclass, or an instance

Rules: a non-empty ``name``; ``formats`` a non-empty tuple of strings; ``render(view, fmt,
console=...)`` succeeds for every declared format on :func:`example_results` (two fusions × two seeds
on one dataset, with test predictions, plus one failed run) and produces output: a return value other
than ``None`` or text printed to the ``console`` it is given; and it renders an empty view (no runs)
without raising.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from fusionzoo.testing._plugins import build_plugin, scratch_folder
from fusionzoo.testing.contracts import ContractError

__all__ = ["check_reporter", "example_results"]


def example_results(folder: str | Path, metric: str = "test_accuracy") -> Any:
    """A :class:`~fusionzoo.report.base.ResultsView` of a runs directory written under ``folder``:
    ``concat_mlp`` and ``fluid`` × seeds 0, 1 (accuracy, macro-F1, params, train time, 20 test
    predictions each) and one failed ``film`` run."""
    from fusionzoo.report.base import ResultsView
    from fusionzoo.results.store import ResultsStore, config_id_of, run_id_of

    store = ResultsStore(Path(folder) / "runs")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 20)
    for fusion, head, accuracy, params in (("concat_mlp", "mlp", 0.6, 12_000), ("fluid", "moe", 0.8, 90_000)):
        parts = {
            "dataset": "example",
            "data_fingerprint": "example",
            "fusion": fusion,
            "head": head,
            "config_hash": "example",
            "semantics": 1,
            "plugins": "",
            "code": "",
            "regime": "",
        }
        config_id = config_id_of(parts)
        for seed in (0, 1):
            hits = rng.random(20) < accuracy
            predictions = np.where(hits, labels, (labels + 1) % 4)
            store.record(
                {
                    **parts,
                    "seed": seed,
                    "config_id": config_id,
                    "run_id": run_id_of(config_id, seed),
                    "status": "ok",
                    "train_time": 1.0 + seed,
                    "params": params,
                    "test_accuracy": float(hits.mean()),
                    "test_macro_f1": float(hits.mean()) - 0.05,
                    "val_accuracy": float(hits.mean()),
                },
                history=[{"epoch": 1, "loss": 1.0, "val_accuracy": float(hits.mean())}],
                predictions=predictions,
                labels=labels,
            )
    failed = {**parts, "fusion": "film", "head": "mlp"}
    config_id = config_id_of(failed)
    store.record(
        {**failed, "seed": 0, "config_id": config_id, "run_id": run_id_of(config_id, 0), "status": "failed",
         "error": "RuntimeError: example failure"}
    )  # fmt: skip
    return ResultsView.of(store, metric=metric)


def _console() -> Any:
    from rich.console import Console

    return Console(file=io.StringIO(), width=120, color_system=None, force_terminal=False)


def check_reporter(target: Any, folder: str | Path | None = None, **hp: Any) -> None:
    """Validate a reporter plugin (see the module docstring); ``hp``: constructor keyword arguments."""
    from fusionzoo.report.base import Reporter, ResultsView

    reporter, name = build_plugin("reporter", target, Reporter, hp)
    if not isinstance(getattr(reporter, "name", None), str) or not reporter.name:
        raise ContractError(name, "declares a name", f"name = {getattr(reporter, 'name', None)!r}")
    formats = getattr(reporter, "formats", None)
    if not isinstance(formats, tuple | list) or not formats or not all(isinstance(f, str) for f in formats):
        raise ContractError(name, "declares its formats", f"formats = {formats!r}")
    with scratch_folder(folder) as root:
        view = example_results(root)
        empty = ResultsView(view.runs.iloc[0:0], view.store, view.metric)
        for fmt in formats:
            console = _console()
            result = _render(name, reporter, view, fmt, console, "renders each declared format")
            if result is None and not console.file.getvalue().strip():
                raise ContractError(
                    name, "rendering produces output", f"format {fmt!r}: returned None and printed nothing"
                )
            _render(name, reporter, empty, fmt, _console(), "renders an empty view without raising")


def _render(name: str, reporter: Any, view: Any, fmt: str, console: Any, rule: str) -> Any:
    try:
        return reporter.render(view, fmt, console=console)
    except Exception as exc:
        raise ContractError(name, rule, f"format {fmt!r}: {type(exc).__name__}: {exc}") from exc
