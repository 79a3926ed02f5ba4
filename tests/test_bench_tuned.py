"""``bench --tune-trials N``: every cell gets the same study budget on validation, then the seeds run
the best configuration; the studies and the tuned runs resume; bad settings fail before any work."""

from __future__ import annotations

import json

import optuna
import pandas as pd
from click.testing import CliRunner

from fusionzoo.bench.cli import bench
from fusionzoo.bench.tuned import study_name

TINY_DATA = ["size=240", "n_colours=2", "n_shapes=1", "n_genders=1", "n_materials=2"]


def _args(data_dir, out, *extra):
    args = ["--data-dir", str(data_dir), "--out", str(out), "--no-unimodal", "--epochs", "2", "--dim", "16"]
    for option in TINY_DATA:
        args += ["--data-option", option]
    return [*args, "--fusions", "concat_mlp,film", "--seeds", "0,1", "--batch-size", "32", *extra]


def test_tune_trials_same_budget_best_config_over_seeds_and_resume(tmp_path):
    data_dir, out = tmp_path / "data", tmp_path / "runs"
    result = CliRunner().invoke(bench, _args(data_dir, out, "--tune-trials", "3"))
    assert result.exit_code == 0, result.output
    assert "tuned: 3 trials per cell, sampler tpe (seed 0)" in result.output
    assert "objective val_macro_f1 on the validation split" in result.output

    storage = f"sqlite:///{out / 'tune' / 'optuna.db'}"
    tuned = json.loads((out / "tuned.json").read_text())
    assert tuned["trials"] == 3 and len(tuned["cells"]) == 2
    rows = pd.read_parquet(out / "results.parquet")
    assert len(rows) == 4 and (rows["status"] == "ok").all()
    for cell in tuned["cells"]:
        study = optuna.load_study(study_name=cell["study"], storage=storage)
        finished = [t for t in study.trials if t.state.is_finished()]
        assert len(finished) == 3  # the same budget for every cell
        best = max(
            (t for t in finished if t.state == optuna.trial.TrialState.COMPLETE), key=lambda t: t.value
        )
        assert cell["best_trial"] == best.number and cell["best_value"] == best.value
        runs = rows[rows["fusion"] == cell["fusion"]]
        assert sorted(runs["seed"]) == [0, 1]
        for config in runs["config"]:  # every seed trains the best trial's hyperparameters
            config = json.loads(config) if isinstance(config, str) else config
            for key in ("lr", "weight_decay", "dropout"):
                if key in cell["config"]:
                    assert config[key] == cell["config"][key]
        assert cell["fusion"] in result.output

    again = CliRunner().invoke(bench, _args(data_dir, out, "--tune-trials", "3"))
    assert again.exit_code == 0, again.output
    assert "4 finished run(s) reused" in again.output  # the studies are full, the tuned runs reused
    assert "trial 3" not in again.output
    study = optuna.load_study(study_name=study_name("synth", "concat_mlp", "mlp"), storage=storage)
    assert len(study.trials) == 3

    more = CliRunner().invoke(bench, _args(data_dir, out, "--tune-trials", "4", "--seeds", "0"))
    assert more.exit_code == 0, more.output
    study = optuna.load_study(study_name=study_name("synth", "concat_mlp", "mlp"), storage=storage)
    assert len([t for t in study.trials if t.state.is_finished()]) == 4  # only the missing trial ran


def test_tune_trials_untuned_and_tuned_runs_never_mix(tmp_path):
    data_dir, out = tmp_path / "data", tmp_path / "runs"
    plain = CliRunner().invoke(bench, _args(data_dir, out, "--seeds", "0"))
    assert plain.exit_code == 0, plain.output
    tuned = CliRunner().invoke(bench, _args(data_dir, out, "--seeds", "0", "--tune-trials", "2"))
    assert tuned.exit_code == 0, tuned.output
    assert "0 finished run(s) reused" in tuned.output  # a tuned config is another run identity
    rows = pd.read_parquet(out / "results.parquet")
    assert len(rows) == 4 and (rows.groupby("fusion")["config_id"].nunique() == 2).all()
    lines = tuned.output.splitlines()
    board = lines[: next(i for i, line in enumerate(lines) if line.startswith("tuned:"))]
    assert sum("concat_mlp" in line for line in board if "│" in line or "┃" in line) == 1  # tuned only


def test_tune_trials_refuses_a_test_metric_before_any_work(tmp_path):
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(
        bench,
        _args(data_dir, tmp_path / "runs", "--tune-trials", "2", "--config", str(_toml(tmp_path))),
    )
    assert result.exit_code == 2, result.output
    assert "test metric" in result.output and "validation split only" in result.output
    assert not data_dir.exists()  # nothing generated


def _toml(tmp_path):
    path = tmp_path / "test-metric.toml"
    path.write_text('[bench]\ndatasets = ["synth"]\n[tune]\nmetric = "test_accuracy"\n')
    return path


def test_tune_trials_space_entries_apply_to_their_cells_and_unknown_ones_fail_first(tmp_path):
    from fusionzoo.bench.tuned import cell_space_overrides
    from fusionzoo.config import load_config

    config = load_config("quick").with_overrides({})
    config = config.model_copy(update={"space": {"lr": 1e-3, "film_condition_on": "text"}})
    cells = [("synth", "concat_mlp", "mlp", ""), ("synth", "film", "mlp", "")]
    spaces = cell_space_overrides(config, cells)
    assert spaces[cells[0]] == {"lr": 1e-3} and spaces[cells[1]] == {"lr": 1e-3, "film_condition_on": "text"}

    path = tmp_path / "bad-space.toml"
    path.write_text('[bench]\ndatasets = ["synth"]\n[space]\nno_such_param = 3\n')
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(
        bench, _args(data_dir, tmp_path / "runs", "--tune-trials", "2", "--config", str(path))
    )
    assert result.exit_code == 2, result.output
    assert "no_such_param" in result.output and "no fusion/head of the grid" in result.output
    assert not data_dir.exists()
