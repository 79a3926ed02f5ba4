"""One robustness summary everywhere: ``fusionzoo eval``'s printout, the terminal leaderboard and the
HTML report use the same reference (the one eval recorded, named), the same metric (named), and a run's
ER does not depend on which other runs are in the view (hand-built tables, tests/report_tables.py)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import report_tables as rt
from rich.console import Console

from fusionzoo import registry
from fusionzoo.evaluation.session import print_summaries
from fusionzoo.evaluation.tables import EvalTables
from fusionzoo.evaluation.views import run_extras
from fusionzoo.report.base import ResultsView
from fusionzoo.report.leaderboard import with_evaluation_columns
from fusionzoo.report.robustness import robustness_summary
from fusionzoo.results.store import write_table

IMAGE = "missing_image:imputation=mask"


@pytest.fixture
def store(tmp_path):
    return rt.build_runs_dir(tmp_path, optuna_study=False)


def config_of(store, fusion: str) -> str:
    runs = store.load()
    return str(runs.loc[runs["fusion"] == fusion, "config_id"].iloc[0])


def terminal(view: ResultsView) -> str:
    console = Console(width=400, record=True)
    registry.create("reporter", "leaderboard").render(view, "terminal", console=console)
    return " ".join(console.export_text().split())  # titles and notes wrap with the table


def test_the_reference_eval_recorded_is_used_and_named_everywhere(store):
    EvalTables(store).record_reference("film")
    view = ResultsView.of(store)
    film = config_of(store, "film")
    html = robustness_summary(view)
    image = html[html["protocol"] == IMAGE].set_index("config_id")
    assert set(image["reference"]) == {"film"} and abs(image.loc[film, "effective"]) < 1e-12
    extras = pd.concat([view.ok[["config_id"]], run_extras(store, view.ok)], axis=1)
    per_config = extras.groupby("config_id")["eff_robust_missing_image"].mean()
    for config_id, value in per_config.items():
        assert math.isclose(image.loc[config_id, "effective"], value, abs_tol=1e-12)
    assert "against the clean-trained film runs" in terminal(view)
    section = registry.create("reporter", "leaderboard_table").render(view, "section")
    assert "against the clean-trained film runs" in section.blocks[0].caption
    robustness = registry.create("reporter", "robustness").render(view, "section")
    assert any("clean-trained film runs" in getattr(b, "caption", "") for b in robustness.blocks)
    console = Console(width=400, record=True)
    print_summaries(store, console)
    assert "to film of the same settings: film + mlp" in " ".join(console.export_text().split())
    EvalTables(store).record_reference("concat_mlp")  # another eval, another reference: followed
    assert set(robustness_summary(ResultsView.of(store))["reference"]) == {"concat_mlp"}


def test_the_metric_of_r_and_er_is_the_rankings_in_terminal_and_report_and_named(store):
    table = pd.read_parquet(store.dir / "robustness.parquet")
    table["test_macro_f1"] = table["test_accuracy"] ** 3  # another curve: other R and ER
    write_table(store.dir / "robustness.parquet", table)
    view = ResultsView.of(store, None, "test_macro_f1")
    html = robustness_summary(view)
    assert set(html["metric"]) == {"test_macro_f1"}
    frame = with_evaluation_columns(store, view.runs, view.metric)
    terminal_means = frame[frame["status"] == "ok"].groupby("config_id")["rel_robust_missing_image"].mean()
    image = html[html["protocol"] == IMAGE].set_index("config_id")
    for config_id, value in terminal_means.items():
        assert math.isclose(image.loc[config_id, "relative"], value)
    accuracy = with_evaluation_columns(store, view.runs, "test_accuracy")
    assert not accuracy["rel_robust_missing_image"].equals(frame["rel_robust_missing_image"])
    assert "relative / effective robustness of test macro f1" in terminal(view)
    robustness = registry.create("reporter", "robustness").render(view, "section")
    assert any(
        "relative R (macro f1)" in getattr(b, "frame", pd.DataFrame()).columns for b in robustness.blocks
    )
    # a ranking metric the robustness rows lack (a cost column): R/ER of test accuracy, and it says so
    cost = ResultsView.of(store, None, "test_params")
    assert set(robustness_summary(cost)["metric"]) == {"test_accuracy"}


def test_a_runs_er_does_not_depend_on_the_other_runs_in_the_view(store):
    """A view without the reference runs still compares each run with its own reference configuration,
    and runs of other settings in the same directory never join it."""
    full = robustness_summary(ResultsView.of(store)).set_index(["protocol", "config_id"])
    runs = store.load()
    without_reference = set(runs.loc[runs["fusion"] != "concat_mlp", "run_id"])
    part = robustness_summary(ResultsView.of(store, without_reference)).set_index(["protocol", "config_id"])
    film = config_of(store, "film")
    assert math.isclose(part.loc[(IMAGE, film), "effective"], full.loc[(IMAGE, film), "effective"])
    # concat_mlp runs of another width (other settings) are added to the directory: nothing changes
    table = pd.read_parquet(store.dir / "robustness.parquet")
    ok = runs[(runs["fusion"] == "concat_mlp") & (runs["status"] == "ok")]
    wide = ok.assign(
        run_id=ok["run_id"] + "-wide", config_id=ok["config_id"] + "-wide",
        config=json.dumps({"dim": 512, "batch_size": 32, "metric": "accuracy", "epochs": 4}),
    )  # fmt: skip
    write_table(store.results_path, pd.concat([runs, wide], ignore_index=True))
    extra = table[table["run_id"].isin(set(ok["run_id"]))].assign(
        run_id=lambda t: t["run_id"] + "-wide",
        config_id=lambda t: t["config_id"] + "-wide",
        test_accuracy=lambda t: t["test_accuracy"] * (1 - t["level"]),
        eval_fingerprint=lambda t: t["eval_fingerprint"] + "-wide",
    )
    write_table(store.dir / "robustness.parquet", pd.concat([table, extra], ignore_index=True))
    after = robustness_summary(ResultsView.of(store)).set_index(["protocol", "config_id"])
    assert math.isclose(after.loc[(IMAGE, film), "effective"], full.loc[(IMAGE, film), "effective"])
    assert after.loc[(IMAGE, film), "reference_label"] == "concat_mlp + mlp"


def test_tuned_runs_are_compared_with_a_tuned_reference_only(store):
    """A run whose configuration ``bench --tune-trials`` chose (tuned.json) is not compared with untuned
    reference runs: here no concat_mlp run is tuned, so the tuned film has no ER; the others keep theirs."""
    from fusionzoo.evaluation.views import reference_settings
    from fusionzoo.train.config import RunConfig

    runs = store.load()
    tuned = {**json.loads(runs["config"].iloc[0]), "lr": 0.0031, "dropout": 0.12}  # the study's choice
    runs.loc[runs["fusion"] == "film", "config"] = json.dumps(tuned)
    write_table(store.results_path, runs)
    film = runs[runs["fusion"] == "film"].iloc[0]
    cell = {**RunConfig().to_dict(), **tuned, "fusion": "film", "seed": 0}
    (store.dir / "tuned.json").write_text(json.dumps({"cells": [{"fusion": "film", "config": cell}]}))
    keys = reference_settings(store, runs[runs["status"] == "ok"])
    concat = runs.loc[runs["fusion"] == "concat_mlp", "run_id"].iloc[0]
    assert keys[film["run_id"]] != keys[concat] and '"tuned"' in keys[film["run_id"]]
    summary = robustness_summary(ResultsView.of(store)).set_index(["protocol", "config_id"])
    assert math.isnan(summary.loc[(IMAGE, config_of(store, "film")), "effective"])
    assert not math.isnan(summary.loc[(IMAGE, config_of(store, "fluid:layers=1,queries=8")), "effective"])
    # concat_mlp tuned too (its own hyperparameters): the tuned film is compared with it, the untuned
    # fluid now has no reference
    other = {**json.loads(runs["config"].iloc[0]), "lr": 0.0007, "weight_decay": 0.04}
    runs.loc[runs["fusion"] == "concat_mlp", "config"] = json.dumps(other)
    write_table(store.results_path, runs)
    cells = [{"config": cell}, {"config": {**RunConfig().to_dict(), **other, "fusion": "concat_mlp"}}]
    (store.dir / "tuned.json").write_text(json.dumps({"cells": cells}))
    summary = robustness_summary(ResultsView.of(store)).set_index(["protocol", "config_id"])
    assert not math.isnan(summary.loc[(IMAGE, config_of(store, "film")), "effective"])
    assert math.isnan(summary.loc[(IMAGE, config_of(store, "fluid:layers=1,queries=8")), "effective"])
