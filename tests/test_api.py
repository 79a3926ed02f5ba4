"""The Python API (``fusionzoo.bench`` / ``evaluate`` / ``tune`` / ``load_results``): its tables against the
runs, its parity with the command line, its argument errors, its import cost, and docs/python-api.md run
as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import fusionzoo as fz
from fusionzoo.config import ConfigError

REPO = Path(__file__).resolve().parents[1]
# a 4-class embedded dataset (2 image keys × 2 text keys), 240 listings (as tests/test_bench_cli.py)
SMALL = {"size": 240, "n_colours": 2, "n_shapes": 1, "n_genders": 1, "n_materials": 2}
TINY = {"epochs": 2, "dim": 16, "batch_size": 32}


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """Two fusions × two seeds trained through the API (data generated and encoded once)."""
    root = tmp_path_factory.mktemp("api")
    results = fz.bench(
        fusions=["concat_mlp", "film"], seeds=[0, 1], data_dir=root / "data", data_options=SMALL,
        out=root / "runs", unimodal=False, verbose=False, **TINY,
    )  # fmt: skip
    return root, results


def test_bench_tables_are_the_runs(grid):
    _, results = grid
    runs = results.runs
    assert len(runs) == 4 and set(runs["status"]) == {"ok"} and set(runs["seed"]) == {0, 1}
    assert list(runs.columns[:6]) == ["dataset", "fusion", "head", "seed", "status", "test_accuracy"]
    board = results.leaderboard
    assert list(board["fusion"]) and set(board["fusion"]) == {"concat_mlp", "film"}
    assert list(board["rank"]) == [1, 2] and list(board["n"]) == [2, 2]
    means = runs.groupby("fusion")["test_accuracy"].mean()
    for _, row in board.iterrows():  # the leaderboard's mean is the mean over the seeds' runs
        assert row["mean"] == pytest.approx(means[row["fusion"]], abs=1e-12)
    assert board["mean"].is_monotonic_decreasing  # best first
    assert not results.failed and results.run_ids == frozenset(runs["run_id"])
    assert len(results.history) >= 4 and results.robustness is None


def test_load_results_and_report(grid):
    root, results = grid
    loaded = fz.load_results(root / "runs")
    pd.testing.assert_frame_equal(loaded.leaderboard, results.leaderboard)
    by_f1 = fz.load_results(root / "runs", metric="macro_f1")
    assert by_f1.metric == "test_macro_f1"
    assert set(by_f1.leaderboard["mean"]) == set(by_f1.runs.groupby("config_id")["test_macro_f1"].mean())
    page = loaded.report(root / "page.html")
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "concat_mlp" in html and "film" in html
    table = loaded.report(root / "board.csv", fmt="csv")
    assert set(pd.read_csv(table)["fusion"]) == {"concat_mlp", "film"}
    assert "runs" in repr(loaded) and "4 runs, 4 ok" in repr(loaded)


def test_the_command_line_runs_the_same_experiment(grid):
    """The same values as flags: every run is reused (same identity), nothing is trained again."""
    from fusionzoo.cli.bench import bench

    root, results = grid
    args = ["--fusions", "concat_mlp,film", "--seeds", "0,1", "--no-unimodal", "--out", str(root / "runs"),
            "--data-dir", str(root / "data"), "--epochs", "2", "--dim", "16", "--batch-size", "32"]  # fmt: skip
    for key, value in SMALL.items():
        args += ["--data-option", f"{key}={value}"]
    result = CliRunner().invoke(bench, args)
    assert result.exit_code == 0, result.output
    assert "4 finished run(s) reused" in result.output and "0 to run" in result.output
    assert len(fz.load_results(root / "runs").runs) == 4


def test_evaluate(grid):
    root, _ = grid
    evaluated = fz.evaluate(root / "runs", protocols=["missing_image:rates=0;1"], verbose=False)
    robustness = evaluated.robustness
    assert not evaluated.problems and len(robustness) == 8  # 4 runs × levels 0 and 1
    assert set(robustness["level"]) == {0.0, 1.0} and set(robustness["protocol_name"]) == {"missing_image"}
    clean = robustness[robustness["level"] == 0].set_index("run_id")["test_accuracy"]
    runs = evaluated.runs.set_index("run_id")["test_accuracy"]
    assert (clean - runs[clean.index]).abs().max() < 1e-9  # level 0 is the clean test set
    again = fz.evaluate(root / "runs", protocols=["missing_image:rates=0;1"], verbose=False)
    assert len(again.robustness) == 8  # a rerun evaluates only what is missing: nothing


def test_tune_and_export(grid, tmp_path):
    root, _ = grid
    study = fz.tune("concat_mlp", trials=2, epochs=1, dim=16, data_dir=root / "data", data_options=SMALL,
                    out=tmp_path / "tune", verbose=False)  # fmt: skip
    assert len(study.trials) == 2 and set(study.trials["state"]) == {"COMPLETE"}
    assert study.study.study_name == "concat_mlp__mlp__val_macro_f1"  # the command line's name
    best = study.best_trials[0]
    assert best.value == study.trials["value"].max() and study.best_params == best.params
    preset = study.export(tmp_path / "best.toml").read_text()
    assert "[bench]" in preset and f"trial {best.number}" in preset
    assert (tmp_path / "tune" / "optuna.db").is_file()


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"seeds": [-1]}, "seeds[0]: input should be greater than or equal to 0"),
        ({"seeds": "0"}, "seeds: expected a list, e.g. ['0'], not one string"),
        ({"fusions": "film"}, "fusions: expected a list, e.g. ['film']"),
        ({"epochs": 0}, "epochs: input should be greater than 0 (got 0)"),
        ({"data_options": [1]}, "data_options: input should be a valid dictionary"),
        ({"dimm": 3}, "unknown argument(s) dimm (did you mean 'dim'?)"),
        ({"mode": "x"}, "mode ([bench] mode): Input should be 'frozen' or 'finetune'"),
        ({"fusions": ["flim"]}, "fusion 'flim' is not registered (did you mean 'film'"),
        ({"dataset": "nope"}, "dataset 'nope' is not registered"),
        ({"config": "quik"}, "config file quik not found (did you mean 'quick'?)"),
        ({"data_options": {"sise": 10}}, "sise"),
        ({"config": 3}, "config: input should be a valid string or"),
    ],
)
def test_bad_arguments_fail_before_any_work(tmp_path, arguments, expected):
    with pytest.raises(ConfigError) as info:
        fz.bench(out=tmp_path / "runs", data_dir=tmp_path / "data", verbose=False, **arguments)
    assert expected in str(info.value)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()


def test_other_bad_arguments(grid, tmp_path):
    root, _ = grid
    with pytest.raises(ConfigError, match=r"fusionzoo.evaluate\(\) got unknown argument\(s\) fusions"):
        fz.evaluate(tmp_path, fusions=["film"])
    with pytest.raises(ConfigError, match="nothing to evaluate"):
        fz.evaluate(tmp_path)
    with pytest.raises(ConfigError, match="has no results.parquet"):
        fz.load_results(tmp_path)
    with pytest.raises(ConfigError, match="metric 'test_nope' is not a column"):
        fz.load_results(root / "runs", metric="nope")
    with pytest.raises(ConfigError, match=r"fusionzoo.tune\(\): trials: input should be greater than 0"):
        fz.tune("film", trials=0)
    with pytest.raises(ConfigError, match="fmt must be one of"):
        fz.load_results(root / "runs").report(tmp_path / "x.pdf", fmt="pdf")


def test_a_config_object_is_a_preset():
    """``config=`` takes an ExperimentConfig too; the call's options apply to a copy."""
    from fusionzoo.api.options import BENCH_OPTIONS, build_config
    from fusionzoo.config import load_config

    quick = load_config("quick")
    built = build_config("bench", quick, {"epochs": 2, "seeds": [4]}, BENCH_OPTIONS)
    assert built.train.epochs == 2 and built.bench.seeds == [4] and built.name == "quick"
    assert quick.train.epochs == 15 and quick.bench.seeds == [0, 1, 2]


def test_option_tables_match_the_flags():
    """Each argument sets the config field of the flag of the same name (the two never drift)."""
    from fusionzoo.api.options import BENCH_OPTIONS, EVAL_OPTIONS, TUNE_OPTIONS
    from fusionzoo.cli.bench import BENCH_FLAGS
    from fusionzoo.cli.eval import EVAL_FLAGS, EVAL_TABLE
    from fusionzoo.cli.options import FLAGS
    from fusionzoo.cli.tune import EXPERIMENT_FLAGS, TUNE_FLAGS

    renamed = {"with_unimodal": "unimodal", "with_probe": "probe"}
    for names, table, options in (
        (BENCH_FLAGS, FLAGS, BENCH_OPTIONS),
        ((*TUNE_FLAGS, *EXPERIMENT_FLAGS), {**FLAGS, **TUNE_FLAGS}, TUNE_OPTIONS),
        (EVAL_FLAGS, {**FLAGS, **EVAL_TABLE}, EVAL_OPTIONS),
    ):
        expected = {
            renamed.get(n, n): table[n].path for n in names if n != "out" or options is not TUNE_OPTIONS
        }
        assert {k: v for k, v in options.items() if k in expected} == expected
        assert set(expected) <= set(options)


def test_import_stays_cheap():
    """``import fusionzoo`` loads neither torch nor pandas; reaching the API functions loads pandas (for
    ``Results``), not torch: that waits for a run."""
    code = (
        "import sys, inspect, fusionzoo as fz; loaded = lambda: sorted(m for m in ('torch', 'pandas') "
        "if m in sys.modules); print(loaded()); fz.bench, fz.tune, fz.evaluate; "
        "print(loaded(), list(inspect.signature(fz.bench).parameters)[:3], callable(fz.tune))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "['pandas'] ['fusions', 'heads', 'seeds'] True"]


def test_the_packages_stay_packages():
    """``fusionzoo.bench`` / ``fusionzoo.tune`` are both the packages and the API functions."""
    import fusionzoo.bench.session
    import fusionzoo.tune.study  # noqa: F401

    assert fz.bench.session.run_bench and fz.tune.TuneError and fz.bench is sys.modules["fusionzoo.bench"]
    with pytest.raises(ConfigError, match="unknown argument"):
        fz.tune("film", trails=3)


def test_one_liner_in_a_real_process(grid, tmp_path):
    """``python -c "import fusionzoo as fz; print(fz.bench(...).leaderboard)"`` in a fresh interpreter."""
    root, _ = grid
    code = (
        "import fusionzoo as fz; print(fz.bench(fusions=['film'], seeds=[0], epochs=1, dim=16, unimodal=False, "
        f"data_dir={str(root / 'data')!r}, data_options={SMALL!r}).leaderboard)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r"^0\s+synth\s+1\s+film\s+mlp\s+1\s", out.stdout, re.M), out.stdout[-3000:]
    assert (tmp_path / "runs" / "quick" / "results.parquet").is_file()  # the default out: runs/quick


def test_docs_page_runs_as_written(tmp_path, monkeypatch):
    """Every ``python`` block of docs/python-api.md, in order, in one namespace (as a notebook)."""
    page = (REPO / "docs" / "python-api.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", page, re.S | re.M)
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FUSIONZOO_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("FUSIONZOO_CACHE", raising=False)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/python-api.md", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "runs" / "notebook" / "report.html").is_file()
    assert (tmp_path / "runs" / "film-tuned.toml").is_file()
    assert set(namespace["curve"].columns) == {0.0, 1.0}
