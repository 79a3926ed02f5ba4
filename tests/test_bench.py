"""Bench runner: results table, resume, failure isolation, statistics, presets, bad input."""

from __future__ import annotations

import itertools
import math
import multiprocessing
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from scipy import stats as sps
from torch import nn

from fusionzoo.bench.checks import validate_bench
from fusionzoo.bench.runner import run_grid
from fusionzoo.cli.bench import bench
from fusionzoo.config import ConfigError, ExperimentConfig, load_config, preset_names
from fusionzoo.experiment import Experiment
from fusionzoo.interface import Fusion, FusionOutput
from fusionzoo.registry import REGISTRIES, register_fusion
from fusionzoo.results.stats import holm, mcnemar, paired_t_test, summarize, t_interval
from fusionzoo.results.store import (
    IDENTITY,
    ResultsSchemaError,
    ResultsStore,
    read_table,
    run_id_of,
    write_table,
)
from fusionzoo.testing.token_features import synthetic_features

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = {"dim": 16, "epochs": 1, "batch_size": 64, "lr": 3e-3}


def build_grid(config: ExperimentConfig, fingerprint: str = "fp-test"):
    return Experiment(config).grid(dict.fromkeys(config.bench.datasets, fingerprint))


def BenchConfig(train=None, fusion_options=None, **bench):  # noqa: N802 - reads like the config tables
    bench.setdefault("device", "cpu")
    return ExperimentConfig.model_validate(
        {"bench": bench, "train": train or {}, "fusion_options": fusion_options or {}}
    )


@pytest.fixture(scope="module")
def data():
    return synthetic_features(96, 32, 32, seed=0)


class ExplodingFusion(Fusion):
    """Raises inside forward: the run must be recorded as failed and the grid must go on."""

    name = "test_exploding"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, image, text, image_mask=None, text_mask=None):
        raise RuntimeError("boom in the plugin")


class WrongShapeFusion(Fusion):
    name = "test_wrong_shape"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, image, text, image_mask=None, text_mask=None):
        return FusionOutput(tokens=self.proj(image[:, :1])[..., :-1])  # (B, 1, D - 1)


@pytest.fixture
def broken_plugins():
    register_fusion(ExplodingFusion)
    register_fusion(WrongShapeFusion)
    yield
    for name in ("test_exploding", "test_wrong_shape"):
        REGISTRIES["fusion"].unregister(name)


def _grid(fusions, seeds=(0,), **bench_kw):
    config = BenchConfig(
        fusions=list(fusions), seeds=list(seeds), with_unimodal=False, train=dict(TINY_TRAIN), **bench_kw
    )
    return build_grid(config)


# ------------------------------------------------------------------------------------------- grid
def test_grid_natural_heads_unimodal_and_no_duplicates():
    config = BenchConfig(
        fusions=["film", "concat_mlp", "film"], seeds=[0, 1], with_unimodal=True, train=dict(TINY_TRAIN)
    )
    specs = build_grid(config)
    assert len(specs) == 2 * 4  # film, concat_mlp, image_only, text_only × 2 seeds (film once)
    assert [s.seed for s in specs[:4]] == [0, 0, 0, 0]  # seed-major
    assert {s.fusion for s in specs} == {"film", "concat_mlp", "image_only", "text_only"}
    assert all(s.head == "mlp" for s in specs)
    fluid = build_grid(BenchConfig(fusions=["fluid"], seeds=[0], with_unimodal=False, train=dict(TINY_TRAIN)))
    assert fluid[0].head == "moe"  # FLUID's natural head
    crossed = build_grid(
        BenchConfig(fusions=["film"], heads=["mlp", "linear"], seeds=[0], with_unimodal=False)
    )
    assert [s.head for s in crossed] == ["mlp", "linear"]
    assert len({s.run_id for s in specs}) == len(specs)


# ---------------------------------------------------------------------------------------- results
def test_results_schema_atomic_write_resume_and_no_duplicates(tmp_path, data):
    store = ResultsStore(tmp_path / "runs")
    specs = _grid(["concat_mlp", "film"], seeds=(0, 1))
    outcome = run_grid(specs, store, lambda name: data)
    assert len(outcome.ran) == 4 and not outcome.failed
    table = store.load()
    assert len(table) == 4 and table["run_id"].is_unique
    for column in (
        *IDENTITY,
        "run_id",
        "status",
        "error",
        "train_time",
        "params",
        "test_accuracy",
        "test_macro_f1",
        "test_top5",
        "test_acc_head",
        "test_acc_human",
        "val_macro_f1",
        "config",
    ):
        assert column in table.columns, column
    assert set(table["status"]) == {"ok"}
    schema = pq.read_schema(store.results_path)
    assert schema.metadata[b"fusionzoo.results.schema_version"] == b"2"
    assert not [p for p in store.dir.iterdir() if p.name.endswith(".tmp")]  # no temp file left behind
    history = store.load_history()
    assert len(history) == 4 and set(history["run_id"]) == set(table["run_id"])
    pred, labels = store.predictions(specs[0].run_id)
    assert pred.shape == labels.shape == (32,)
    assert (store.checkpoint_dir(specs[0].run_id) / "model.safetensors").exists()

    again = run_grid(specs, store, lambda name: data)  # resume: everything finished, nothing reruns
    assert again.ran == [] and len(again.skipped) == 4
    more = _grid(["concat_mlp", "film"], seeds=(0, 1, 2))
    third = run_grid(more, store, lambda name: data)
    assert len(third.ran) == 2 and len(store.load()) == 6 and store.load()["run_id"].is_unique

    # recording a run again replaces its row (no duplicates), e.g. a failed run that is redone
    row = store.load().iloc[0].to_dict()
    store.record({**row, "status": "failed", "error": "x"}, history=[])
    assert len(store.load()) == 6
    assert specs[0].run_id not in store.finished_ids() or row["run_id"] != specs[0].run_id


def test_killed_run_leaves_no_row_and_is_redone(tmp_path, data, monkeypatch):
    import fusionzoo.train.trainer as trainer

    store = ResultsStore(tmp_path / "runs")
    specs = _grid(["concat_mlp", "film"])
    calls = {"n": 0}
    real = trainer.train_run

    def interrupting(config, data, *args, **kwargs):  # Ctrl-C while the second run trains
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(config, data, *args, **kwargs)

    monkeypatch.setattr(trainer, "train_run", interrupting)
    with pytest.raises(KeyboardInterrupt):
        run_grid(specs, store, lambda name: data)
    monkeypatch.setattr(trainer, "train_run", real)
    assert list(store.load()["fusion"]) == ["concat_mlp"]
    assert not store.checkpoint_dir(specs[1].run_id).exists()
    outcome = run_grid(specs, store, lambda name: data)
    assert outcome.ran == [specs[1].run_id]
    assert sorted(store.load()["fusion"]) == ["concat_mlp", "film"]


def test_failing_plugins_are_recorded_and_the_grid_continues(tmp_path, data, broken_plugins):
    store = ResultsStore(tmp_path / "runs")
    specs = _grid(["test_exploding", "test_wrong_shape", "concat_mlp"])
    outcome = run_grid(specs, store, lambda name: data)
    table = store.load().set_index("fusion")
    assert len(outcome.failed) == 2 and table.loc["concat_mlp", "status"] == "ok"
    assert table.loc["test_exploding", "status"] == "failed"
    assert "RuntimeError: boom in the plugin" in table.loc["test_exploding", "error"]
    assert "forward" in table.loc["test_exploding", "traceback"]
    error = table.loc["test_wrong_shape", "error"]
    assert "test_wrong_shape" in error and "tokens have shape (B, Nf, D)" in error
    # failed runs are redone on the next invocation (and replace their row)
    rerun = run_grid(specs, store, lambda name: data)
    assert len(rerun.ran) == 2 and len(store.load()) == 3


def test_older_incompatible_results_file_gives_a_clear_message(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    old = pa.Table.from_pandas(pd.DataFrame({"fusion": ["film"], "acc": [0.5]}))
    pq.write_table(old, runs / "results.parquet")
    with pytest.raises(ResultsSchemaError, match="schema version none.*new --out directory"):
        ResultsStore(runs)
    newer = pa.Table.from_pandas(pd.DataFrame({"fusion": ["film"]}))
    newer = newer.replace_schema_metadata({b"fusionzoo.results.schema_version": b"99"})
    pq.write_table(newer, runs / "results.parquet")
    with pytest.raises(ResultsSchemaError, match="schema version 99"):
        ResultsStore(runs)
    result = CliRunner().invoke(bench, ["--fusions", "film", "--out", str(runs), "--dry-run"])
    assert result.exit_code == 1
    assert "schema version 99" in result.output and "Traceback" not in result.output


def _replace_table_forever(path: str) -> None:
    for i in itertools.count():
        write_table(path, pd.DataFrame({"run_id": [f"r{j}" for j in range(i % 40 + 1)], "acc": 0.5}))


def test_a_table_read_while_a_writer_replaces_it_is_whole(tmp_path):
    """``status``/``eval`` read tables a running bench replaces; each read sees one whole version.

    Read by path, parquet opens the file several times and mixed two versions in ~9% of reads here
    ("Page was smaller than expected"), which failed the SIGKILL-mid-eval test once in CI.
    """
    path = tmp_path / "results.parquet"
    write_table(path, pd.DataFrame({"run_id": ["r0"], "acc": 0.5}))
    writer = multiprocessing.get_context("spawn").Process(target=_replace_table_forever, args=(str(path),))
    writer.start()
    try:
        sizes = set()
        deadline = time.time() + 3
        while time.time() < deadline or len(sizes) < 5:
            sizes.add(len(read_table(path, ("run_id", "acc"))))
    finally:
        writer.kill()
        writer.join()
    assert len(sizes) >= 5  # the writer really replaced it while we read


def test_a_truncated_results_file_is_a_clear_error(tmp_path):
    path = write_table(tmp_path / "results.parquet", pd.DataFrame({"run_id": ["r0"], "acc": 0.5}))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ResultsSchemaError, match="not a readable parquet table.*move it away"):
        read_table(path)


# ------------------------------------------------------------------------------------------ stats
def test_t_interval_paired_t_and_mcnemar_on_hand_made_numbers():
    mean, half = t_interval([0.80, 0.82, 0.84])
    assert mean == pytest.approx(0.82)
    assert half == pytest.approx(4.302653 * 0.02 / math.sqrt(3), rel=1e-5)
    assert math.isnan(t_interval([0.5])[1])
    # paired t: differences 0.02, 0.03, 0.04 -> t = mean/(sd/sqrt(n)) = 0.03/(0.01/sqrt(3))
    t = 0.03 / (0.01 / math.sqrt(3))
    assert paired_t_test([0.82, 0.85, 0.88], [0.80, 0.82, 0.84]) == pytest.approx(
        2 * sps.t.sf(t, 2), rel=1e-6
    )
    assert paired_t_test([0.5, 0.6], [0.5, 0.6]) == 1.0
    a = np.array([True] * 10 + [True] * 6)
    b = np.array([True] * 10 + [False] * 6)
    assert mcnemar(a, b) == pytest.approx(2 * 0.5**6)  # b=6, c=0: exact two-sided binomial
    assert mcnemar(a, a) == 1.0
    assert holm([0.01, 0.04, float("nan"), 0.03]) == pytest.approx(
        [0.03, 0.06, float("nan"), 0.06], nan_ok=True
    )


def test_summarize_marks_significant_differences():
    rows = []
    for seed, (x, y, z) in enumerate([(0.90, 0.60, 0.895), (0.91, 0.61, 0.905), (0.92, 0.60, 0.93)]):
        for fusion, value in (("fluid", x), ("image_only", y), ("film", z)):
            rows.append(
                {
                    "dataset": "synth",
                    "fusion": fusion,
                    "head": "mlp",
                    "seed": seed,
                    "config_hash": "h",
                    "config_id": f"id-{fusion}",
                    "run_id": f"{fusion}{seed}",
                    "status": "ok",
                    "test_accuracy": value,
                    "params": 10,
                    "train_time": 1.0,
                }
            )
    rows.append({**rows[0], "run_id": "bad", "seed": 9, "status": "failed", "test_accuracy": float("nan")})
    table = summarize(pd.DataFrame(rows), "test_accuracy").set_index("fusion")
    assert table.loc["fluid", "is_best"] and table.loc["fluid", "rank"] == 1
    assert table.loc["fluid", "n"] == 3 and table.loc["fluid", "failed"] == 1
    assert table.loc["image_only", "significant"] and table.loc["image_only", "test"] == "paired t"
    assert not table.loc["film", "significant"]
    mean, half = t_interval([0.60, 0.61, 0.60])
    assert table.loc["image_only", "mean"] == pytest.approx(mean) and table.loc[
        "image_only", "ci"
    ] == pytest.approx(half)
    with pytest.raises(KeyError, match="available"):
        summarize(pd.DataFrame(rows), "test_nope")


# ----------------------------------------------------------------------------------------- presets
def test_no_config_is_the_packaged_quick_preset():
    default = load_config()
    assert default.model_dump() == load_config("quick").model_dump()
    assert default.bench.fusions == ["fluid", "film", "concat_mlp", "late_fusion", "tfn"]
    assert default.train.dim == 64
    assert default.fusion_options == {"fluid": {"queries": 8, "layers": 1}}
    assert Experiment(default).with_unimodal("synth") and not Experiment(default).with_unimodal("glami1m")


@pytest.mark.parametrize("name", preset_names())
def test_presets_load_and_name_registered_plugins(name):
    preset = load_config(name)
    validate_bench(Experiment(preset))
    specs = build_grid(preset)
    assert specs
    if name.startswith("glami"):
        assert preset.bench.datasets == ["glami1m"] and preset.paper
        assert preset.run_config().lr == pytest.approx(2e-5) and preset.run_config().paper_loss


def test_fusion_options_apply_unless_the_spec_sets_them():
    config = BenchConfig(
        fusions=["fluid", "fluid:queries=4", "film"],
        seeds=[0],
        with_unimodal=False,
        fusion_options={"fluid": {"queries": 8, "layers": 1}},
        train=dict(TINY_TRAIN),
    )
    assert [s.fusion for s in build_grid(config)] == [
        "fluid:layers=1,queries=8",
        "fluid:layers=1,queries=4",
        "film",
    ]


def test_bad_preset_names_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[bench]\nfusion = ["film"]\n')
    with pytest.raises(ConfigError, match=r"unknown key 'fusion' in \[bench\]; valid: .*fusions"):
        load_config(bad)
    bad.write_text("[train]\nlearning_rate = 1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'learning_rate' in \[train\]; valid: .*\blr\b"):
        load_config(bad)
    bad.write_text("[benhc]\nx = 1\n")
    with pytest.raises(ConfigError, match=r"unknown table \[benhc\]; valid: bench, data"):
        load_config(bad)


# --------------------------------------------------------------------------------------- bad input
def test_unknown_fusion_or_head_is_a_click_error_listing_valid_names():
    result = CliRunner().invoke(bench, ["--fusions", "flim,concat_mlp", "--dry-run"])
    assert result.exit_code == 2
    assert "fusion 'flim' is not registered" in result.output and "did you mean 'film'" in result.output
    assert "concat_mlp" in result.output and "fluid" in result.output  # the valid names are listed
    result = CliRunner().invoke(bench, ["--fusions", "film", "--heads", "moee", "--dry-run"])
    assert (
        result.exit_code == 2
        and "head 'moee' is not registered" in result.output
        and "linear" in result.output
    )


def test_seeds_must_be_integers():
    result = CliRunner().invoke(bench, ["--seeds", "0,one,2", "--dry-run"])
    assert result.exit_code == 2 and "'one' (not an integer)" in result.output
    result = CliRunner().invoke(bench, ["--seeds", "0,-1", "--dry-run"])
    assert result.exit_code == 2 and ">= 0" in result.output


def test_out_that_is_a_file(tmp_path):
    target = tmp_path / "results.txt"
    target.write_text("not a directory")
    result = CliRunner().invoke(bench, ["--fusions", "film", "--out", str(target), "--dry-run"])
    assert result.exit_code == 2 and "is a file, not a directory" in result.output


def test_bad_loss_weights_and_config():
    result = CliRunner().invoke(bench, ["--loss-weights", "contrastive", "--dry-run"])
    assert result.exit_code == 2 and "name=value" in result.output
    result = CliRunner().invoke(bench, ["--config", "nope.toml", "--dry-run"])
    assert result.exit_code == 2 and "not found" in result.output


def test_run_id_is_stable():
    assert run_id_of("abc", 0) == run_id_of("abc", 0)
    assert run_id_of("abc", 0) != run_id_of("abc", 1) != run_id_of("abd", 0)


def test_summarize_ranks_a_lower_is_better_metric_ascending():
    import pandas as pd

    from fusionzoo.results.stats import summarize

    rows = [
        {"dataset": "d", "fusion": f, "head": "mlp", "config_id": f, "run_id": f"{f}{s}", "seed": s,
         "status": "ok", "params": 1, "train_time": 1.0, "test_log_loss": v + 0.01 * s}
        for f, v in (("a", 0.9), ("b", 0.3), ("c", 0.6)) for s in (0, 1, 2)
    ]  # fmt: skip
    frame = pd.DataFrame(rows)
    up = summarize(frame, "test_log_loss")
    down = summarize(frame, "test_log_loss", direction="min")
    assert list(up["fusion"]) == ["a", "c", "b"] and list(down["fusion"]) == ["b", "c", "a"]
    assert down.loc[down["is_best"], "fusion"].item() == "b"
