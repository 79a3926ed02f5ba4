"""The terminal leaderboard as a person reads it: fitted to the terminal width without cutting a number,
"best" only for a configuration with a result, the Holm family named, and data versions apart."""

from __future__ import annotations

import json
import re

import pytest
import report_tables as rt
from rich.console import Console

from fusionzoo import registry
from fusionzoo.report.base import ResultsView
from fusionzoo.results.stats import summarize
from fusionzoo.results.store import ResultsStore, config_id_of, run_id_of


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> ResultsView:
    store = rt.build_runs_dir(tmp_path_factory.mktemp("layout"), optuna_study=False)
    return ResultsView.of(store)


def terminal(view: ResultsView, width: int) -> str:
    console = Console(width=width, record=True, force_terminal=False)
    registry.create("reporter", "leaderboard").render(view, "terminal", console=console)
    return console.export_text()


def table_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]


@pytest.mark.parametrize("width", [80, 100, 120, 140, 200])
def test_no_number_is_cut_at_common_widths_and_hidden_columns_are_named(full, width):
    text = terminal(full, width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    rows = table_rows(text)
    assert rows and not any("…" in cell for row in rows for cell in row)
    summary = summarize(full.runs, "test_accuracy", predictions=full.store.predictions)
    for _, row in summary.iterrows():  # every mean ± CI whole, on one line
        assert f"{row['mean'] * 100:.2f} ± {row['ci'] * 100:.2f}" in text
    numeric = re.compile(r"^[-+<>=p ]*\d")
    for row in rows:
        for cell in row:
            if numeric.match(cell):
                assert not cell.endswith(("…", ".")), cell
    header = " ".join(line for line in lines if line.startswith("┃"))
    flat = " ".join(text.split())
    hidden = re.search(r"(\d+) columns? hidden at this width", flat)
    all_columns = 13  # #, fusion, head, seeds, accuracy, F1, vs best, params, train s, 2 R, GFLOPs, latency
    shown = next(line for line in lines if line.startswith("┃")).count("┃") - 1
    if shown < all_columns:
        assert hidden, text
        assert int(hidden.group(1)) == all_columns - shown
        assert "fusionzoo report" in flat and "--format md" in flat
    else:
        assert hidden is None
    for protocol in ("missing_image", "missing_text"):  # each robustness column told apart (or named hidden)
        assert f"({protocol})" in header or f"rel. robust. ({protocol})" in flat


def test_wide_terminal_shows_every_column_and_narrow_one_drops_the_cost_first(full):
    wide = terminal(full, 240)
    assert "hidden at this width" not in wide and "(missing_text)" in wide and "latency" in wide
    narrow = terminal(full, 80)
    note = " ".join(narrow.split())
    assert "hidden at this width (macro F1, params, train s" in note
    for kept in ("fusion", "accuracy", "vs best"):
        assert kept in narrow


def test_fit_drops_by_priority_and_wraps_names_at_separators():
    from fusionzoo.report.fit import Column, fit_columns, wrap_label

    columns = [
        Column("fusion", ["fluid:layers=1,queries=8"], 0, numeric=False, justify="left"),
        Column("accuracy", ["92.70 ± 0.90"], 1),
        Column("rel. robust. (missing_image)", ["88.12"], 5),
        Column("params", ["1.20M"], 9),
    ]
    shown, hidden = fit_columns(columns, 50)
    assert [c.title for c in hidden] == ["params"] or [c.title for c in hidden] == [
        "rel. robust. (missing_image)",
        "params",
    ]
    assert all(c.width >= len(c.cells[0]) for c in shown if c.numeric)
    assert wrap_label("fluid:layers=1,queries=8", 16) == "fluid:layers=1,\nqueries=8"
    assert wrap_label("abcdefghij", 4) == "abcd\nefgh\nij"


def _record(
    store: ResultsStore, fusion: str, seed: int, status: str, accuracy: float, fingerprint: str
) -> None:
    parts = {**rt.identity(fusion, "mlp"), "data_fingerprint": fingerprint}
    parts["config_id"] = config_id_of({k: parts[k] for k in rt.identity(fusion, "mlp") if k != "config_id"})
    store.record(
        {
            **parts,
            "seed": seed,
            "run_id": run_id_of(parts["config_id"], seed),
            "status": status,
            "error": "boom" if status == "failed" else "",
            "test_accuracy": accuracy,
            "params": 1000,
            "train_time": 1.0,
            "config": json.dumps({"dim": 16}),
        }
    )


def test_a_fusion_whose_only_runs_failed_is_not_best(tmp_path):
    store = ResultsStore(tmp_path)
    for seed in (0, 1):
        _record(store, "film", seed, "failed", float("nan"), "fp")
    text = terminal(ResultsView.of(store), 120)
    (row,) = table_rows(text)
    assert row[0] == "-" and "best" not in row and "2 failed" in " ".join(row)
    for seed in (0, 1):
        _record(store, "concat_mlp", seed, "ok", 0.8 + 0.01 * seed, "fp")
    rows = {r[1]: r for r in table_rows(terminal(ResultsView.of(store), 120))}
    assert rows["concat_mlp"][0] == "1" and "best" in rows["concat_mlp"]
    assert rows["film"][0] == "-" and "best" not in rows["film"]


def test_the_leaderboard_legend_names_its_holm_family(full):
    text = " ".join(terminal(full, 200).split())
    assert (
        "Holm over the 3 comparisons with the best" in text
        and "pairwise section adjusts over all pairs" in text
    )
