"""``bench --tune-trials N``: every cell gets the same study budget on validation, then the seeds run
the best configuration; the studies and the tuned runs resume; bad settings fail before any work."""

from __future__ import annotations

import json

import optuna
import pandas as pd
from click.testing import CliRunner
from tune_helpers import record_training_threads

from fusionzoo.bench.tuned import study_name
from fusionzoo.cli.bench import bench
from fusionzoo.experiment import canonical_spec

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

    assert "trials train with seed 10000, the runs with the evaluation seeds 0, 1" in result.output

    storage = f"sqlite:///{out / 'tune' / 'optuna.db'}"
    tuned = json.loads((out / "tuned.json").read_text())
    assert tuned["trials"] == 3 and len(tuned["cells"]) == 2
    assert tuned["train_seed"] == 10_000 and tuned["evaluation_seeds"] == [0, 1]
    rows = pd.read_parquet(out / "results.parquet")
    assert len(rows) == 4 and (rows["status"] == "ok").all()
    for cell in tuned["cells"]:
        study = optuna.load_study(study_name=cell["study"], storage=storage)
        finished = [t for t in study.trials if t.state.is_finished()]
        assert len(finished) == 3  # the same budget for every cell
        assert {t.user_attrs["config"]["seed"] for t in finished} == {10_000}  # never an evaluation seed
        best = max(
            (t for t in finished if t.state == optuna.trial.TrialState.COMPLETE), key=lambda t: t.value
        )
        assert cell["best_trial"] == best.number and cell["best_value"] == best.value
        # the compute the budget took: trials by outcome and the epochs they trained
        assert cell["complete"] + cell["pruned"] + cell["failed"] == cell["trials"] == 3
        assert cell["epochs"] == sum(t.user_attrs["epochs_run"] for t in finished) > 0
        assert f"3: {cell['complete']} complete, {cell['pruned']} pruned, 0 failed" in result.output
        # what is trained is what won: the best trial's fusion and head specs, canonical, every seed
        assert cell["tuned_fusion"] == canonical_spec("fusion", best.user_attrs["config"]["fusion"])
        assert cell["tuned_head"] == canonical_spec("head", best.user_attrs["config"]["head"])
        assert cell["tuned_fusion"] != cell["fusion"]  # the sampled hyperparameters are in the spec
        runs = rows[rows["fusion"] == cell["tuned_fusion"]]
        assert sorted(runs["seed"]) == [0, 1] and set(runs["head"]) == {cell["tuned_head"]}
        for config in runs["config"]:  # every seed trains the best trial's whole configuration
            config = json.loads(config) if isinstance(config, str) else config
            own = ("seed", "fusion", "head")  # the seed is the run's; the specs are canonical (above)
            assert {k: v for k, v in config.items() if k not in own} == {
                k: v for k, v in best.user_attrs["config"].items() if k not in own
            }
            assert (config["fusion"], config["head"]) == (cell["tuned_fusion"], cell["tuned_head"])
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

    other = CliRunner().invoke(bench, _args(data_dir, out, "--tune-trials", "4", "--epochs", "3"))
    assert other.exit_code == 1, other.output  # trials of another budget are not comparable: refused
    assert "epochs: the study has 2, this run 3" in other.output
    assert "Bench into another --out, or delete the study" in other.output
    assert "use another --study name" not in other.output  # bench has no --study flag


def test_tune_trials_untuned_and_tuned_runs_never_mix(tmp_path):
    """Tuned runs are other runs; they train the tuned architecture (a [space] choice of concat_mlp's
    hidden_mult changes the trained model's size) and pick their best epoch as the untuned runs do."""
    data_dir, out = tmp_path / "data", tmp_path / "runs"
    preset = tmp_path / "wide.toml"
    preset.write_text(
        '[bench]\ndatasets = ["synth"]\n[train]\nmetric = "accuracy"\n[space]\nhidden_mult = { choices = [4.0] }\n'
    )
    config = ["--config", str(preset), "--seeds", "0"]
    plain = CliRunner().invoke(bench, _args(data_dir, out, *config))
    assert plain.exit_code == 0, plain.output
    tuned = CliRunner().invoke(bench, _args(data_dir, out, *config, "--tune-trials", "2"))
    assert tuned.exit_code == 0, tuned.output
    assert "0 finished run(s) reused" in tuned.output  # a tuned config is another run identity
    rows = pd.read_parquet(out / "results.parquet")
    assert len(rows) == 4 and rows["config_id"].nunique() == 4
    concat = rows[rows["fusion"].str.startswith("concat_mlp")].set_index("fusion")
    assert "concat_mlp" in concat.index  # the untuned run: hidden_mult 2.0 (the default)
    wide = next(f for f in concat.index if "hidden_mult=4.0" in f)  # the tuned run's spec says 4.0
    assert concat.loc[wide, "params"] > concat.loc["concat_mlp", "params"]  # and it trained 4.0
    metrics = {json.loads(c)["metric"] for c in rows["config"]}
    assert metrics == {"accuracy"}  # one best-epoch rule for tuned and untuned runs ([train] metric)
    lines = tuned.output.splitlines()
    board = lines[: next(i for i, line in enumerate(lines) if line.startswith("tuned:"))]
    assert sum("concat_mlp" in line for line in board if "│" in line or "┃" in line) == 1  # tuned only


def test_tune_trials_refuses_an_evaluation_seed_as_tuning_seed_before_any_work(tmp_path):
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(
        bench, _args(data_dir, tmp_path / "runs", "--tune-trials", "2", "--seeds", "0,10000")
    )
    assert result.exit_code == 2, result.output
    assert "the trials train with seed 10000" in result.output and "evaluation seed" in result.output
    assert not data_dir.exists()  # nothing generated


def test_tuning_and_training_run_at_the_configured_threads(tmp_path, monkeypatch):
    """--threads (default 1) holds for the trials too, not only for the runs that follow them."""
    import torch

    seen = record_training_threads(monkeypatch)
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # what the machine would give a process that sets nothing
    try:
        args = ["--fusions", "concat_mlp", "--seeds", "0", "--tune-trials", "2", "--jobs", "1"]
        result = CliRunner().invoke(bench, _args(tmp_path / "data", tmp_path / "runs", *args))
        assert torch.get_num_threads() == 3  # restored afterwards
    finally:
        torch.set_num_threads(before)
    assert result.exit_code == 0, result.output
    assert seen == [(10_000, 1), (10_000, 1), (0, 1)]  # two trials, then the run of seed 0


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
