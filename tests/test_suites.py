"""Suites (issue 22 items 1, 3, 4, 6): dataset specs and data keys, re-drawn splits and nested
training fractions (test fixed), their place in the run identity and the paired tests, temperature
scaling, the cross-dataset summary in every format, and the report sections, end to end."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.stats import ttest_rel

from fusionzoo.cli import main
from fusionzoo.cli.bench import bench
from fusionzoo.config import ConfigError, ExperimentConfig, load_config
from fusionzoo.data.base import DataError, DatasetSplits
from fusionzoo.data.variants import apply_variant, nested_subset
from fusionzoo.datasets.specs import DataKey, available_datasets, canonical_dataset, data_keys, left_out
from fusionzoo.experiment import Experiment, RunSpec
from fusionzoo.metrics.ece import expected_calibration_error
from fusionzoo.results.stats import summarize
from fusionzoo.results.store import config_id_of, run_id_of
from fusionzoo.train.calibration import calibration
from fusionzoo.train.config import RunConfig

TINY = "size=240,n_colours=2,n_shapes=1,n_genders=1,n_materials=2"
SUITE = f"synth:{TINY}+synth:{TINY},synth_seed=1"


# ------------------------------------------------------------------------------------- dataset specs
def test_dataset_specs_are_canonical_and_data_keys_round_trip():
    assert canonical_dataset("synth:synth_seed=1,size=800") == "synth:size=800,synth_seed=1"
    assert canonical_dataset("synth:size=800") != canonical_dataset("synth:size=800,synth_seed=1")
    key = DataKey("synth:size=800", 2, 0.3)
    assert str(key) == "synth:size=800|split_seed=2|train_fraction=0.3" and DataKey.parse(str(key)) == key
    assert DataKey.parse("synth") == DataKey("synth") and str(DataKey("synth")) == "synth"
    keys = data_keys(["a", "b"], [0, 1], [0.5, 1.0])
    assert [str(k) for k in keys[:4]] == [
        "a|split_seed=0|train_fraction=0.5", "a|split_seed=0", "a|split_seed=1|train_fraction=0.5", "a|split_seed=1",
    ]  # fmt: skip
    assert len(keys) == 8 and data_keys(["a"], [], []) == [DataKey("a")]


def test_a_spec_sets_its_own_data_and_encoder_options():
    config = load_config(None).with_overrides(
        {"bench.datasets": ["synth:size=300,image_encoder=timm:resnet18"], "data.limit": 100}
    )
    options = Experiment(config).data_options("synth:image_encoder=timm:resnet18,size=300|split_seed=4")
    assert options.dataset == "synth" and options.data == {"limit": 100, "size": 300}
    assert options.encoders["image"] == "timm:resnet18" and options.split_seed == 4


@pytest.mark.parametrize(
    ("spec", "named"),
    [("nosuch:x=1", "nosuch"), ("synth:bogus=1", "bogus"), ("synth:size=abc", "size")],
)
def test_a_bad_dataset_spec_is_a_usage_error_naming_it(spec, named, tmp_path):
    result = CliRunner().invoke(bench, ["--datasets", spec, "--out", str(tmp_path / "r"), "--dry-run"])
    assert result.exit_code == 2 and named in result.output, result.output
    assert not (tmp_path / "r" / "results.parquet").exists()


@pytest.mark.parametrize(
    ("flag", "value", "named"),
    [("--train-fractions", "0,1", "train fractions"), ("--split-seeds", "-1", "seeds"),
     ("--train-fractions", "x", "--train-fractions"), ("--split-seeds", "1,1", "twice")],
)  # fmt: skip
def test_bad_split_seeds_and_fractions_are_refused_before_any_work(flag, value, named, tmp_path):
    result = CliRunner().invoke(bench, [flag, value, "--out", str(tmp_path / "r"), "--dry-run"])
    assert result.exit_code == 2 and named in result.output, result.output


def test_suite_table_moves_its_datasets_and_leaves_out_unset_variables(monkeypatch):
    monkeypatch.setenv("FZ_SET", "/data/set")
    monkeypatch.delenv("FZ_UNSET", raising=False)
    specs = ["glami1m:root=$FZ_SET", "glami1m:root=${FZ_UNSET}/x"]
    assert available_datasets(specs) == ["glami1m:root=/data/set"]
    assert left_out(specs) == ["glami1m (glami1m:root=${FZ_UNSET}/x) left out of the suite: FZ_UNSET not set"]
    config = ExperimentConfig.model_validate({"suite": {"datasets": ["synth"], "when_available": specs}})
    assert config.bench.datasets == ["synth", "glami1m:root=/data/set"]
    assert config.with_overrides({"bench.datasets": ["csv:csv=a.csv"]}).bench.datasets == ["csv:csv=a.csv"]
    with pytest.raises(ValueError, match="not both"):
        ExperimentConfig.model_validate({"suite": {"datasets": ["synth"]}, "bench": {"datasets": ["synth"]}})
    offline = load_config("offline")
    assert offline.suite.baseline == "late_fusion" and offline.bench.datasets[:3] == [
        "synth:size=800", "synth:size=800,synth_seed=1", "synth:size=800,synth_seed=2,noise_rate=0.2",
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------ variants
def _splits(n: int = 120) -> DatasetSplits:
    rng = np.random.default_rng(0)

    def frame(prefix: str, rows: int) -> pd.DataFrame:
        return pd.DataFrame({
            "item_id": [f"{prefix}{i}" for i in range(rows)], "image_path": [f"/img/{prefix}{i // 2}.png" for i in range(rows)],
            "text": ["t"] * rows, "label": rng.integers(0, 3, rows), "geo": "", "label_source": "x", "is_human": False,
        })  # fmt: skip

    return DatasetSplits("d", "/", frame("a", n), frame("v", n // 6), frame("t", 40), ["a", "b", "c"], "f0")


def test_a_split_seed_redraws_train_and_validation_and_never_touches_test():
    base = _splits()
    one, again, two = apply_variant(base, 1), apply_variant(base, 1), apply_variant(base, 2)
    pool = set(base.train["item_id"]) | set(base.val["item_id"])
    for variant in (one, two):
        assert variant.test.equals(base.test)
        assert set(variant.train["item_id"]) | set(variant.val["item_id"]) == pool
        assert not set(variant.train["item_id"]) & set(variant.val["item_id"])
        assert not set(variant.train["image_path"]) & set(variant.val["image_path"])  # grouped by image
        assert abs(len(variant.val) - len(base.val)) <= 3  # the loader's validation fraction
    assert (
        one.val["item_id"].tolist() == again.val["item_id"].tolist() and one.fingerprint == again.fingerprint
    )
    assert set(one.val["item_id"]) != set(two.val["item_id"]) and one.fingerprint != two.fingerprint
    assert apply_variant(base) is base
    with pytest.raises(DataError, match="train fraction"):
        apply_variant(base, None, 1.5)


def test_training_fractions_are_nested_stratified_and_keep_validation_and_test():
    base = _splits(300)
    small, large = apply_variant(base, None, 0.1), apply_variant(base, None, 0.5)
    assert set(small.train["item_id"]) < set(large.train["item_id"]) < set(base.train["item_id"])
    assert small.val.equals(base.val) and small.test.equals(base.test)
    counts, full = small.train["label"].value_counts(), base.train["label"].value_counts()
    assert ((counts - np.ceil(full * 0.1)).abs() <= 0).all()  # ceil(f · n_c) per class
    assert len(nested_subset(np.array([0, 0, 1]), 0.01, 0)) == 2  # at least one row per class


def test_split_seed_joins_the_run_id_and_fraction_the_configuration():
    config = RunConfig(fusion="concat_mlp", head="mlp", seed=0)
    plain = RunSpec.create("synth", config, "f0")
    assert plain.run_id == run_id_of(plain.config_id, 0)  # no variant: the ids runs always had
    split0, split1 = (
        RunSpec.create("synth|split_seed=0", config, "f0"),
        RunSpec.create("synth|split_seed=1", config, "f0"),
    )
    assert (
        split0.config_id == split1.config_id == plain.config_id
        and len({plain.run_id, split0.run_id, split1.run_id}) == 3
    )
    half = RunSpec.create("synth|train_fraction=0.5", config, "f0")
    assert half.config_id != plain.config_id and half.identity["dataset"] == "synth"
    assert config_id_of({**half.identity, "variant": ""}) == plain.config_id
    assert split1.identity_columns()["split_seed"] == 1 and half.identity_columns()["train_fraction"] == 0.5


def test_paired_tests_pair_on_seed_and_split_seed():
    rows = []
    for fusion, shift in (("a", 0.0), ("b", -0.02)):
        for seed in (0, 1):
            for split in (0, 1, 2):
                rows.append({"dataset": "d", "data_fingerprint": "f", "fusion": fusion, "head": "mlp",
                             "config_id": fusion, "run_id": f"{fusion}{seed}{split}", "seed": seed,
                             "split_seed": split, "status": "ok", "params": 1, "train_time": 1.0,
                             "test_accuracy": 0.5 + 0.01 * seed + 0.03 * split + shift * (1 + split * seed)})  # fmt: skip
    summary = summarize(pd.DataFrame(rows)).set_index("fusion")
    assert summary.loc["a", "n"] == 6 and summary.loc["a", "complete"] and summary.loc["b", "complete"]
    a = [0.5 + 0.01 * seed + 0.03 * split for seed in (0, 1) for split in (0, 1, 2)]
    b = [a[3 * seed + split] - 0.02 * (1 + split * seed) for seed in (0, 1) for split in (0, 1, 2)]
    assert summary.loc["b", "test"] == "paired t"  # paired over the 6 (seed, split seed) replicates
    assert summary.loc["b", "p_ttest"] == pytest.approx(ttest_rel(a, b).pvalue)
    incomplete = summarize(pd.DataFrame(rows[:-1])).set_index("fusion")
    assert not incomplete.loc["b", "complete"]  # (seed 1, split 2) is missing


# ----------------------------------------------------------------------------------- calibration
def test_temperature_scaling_fitted_on_validation_calibrates_an_overconfident_model():
    rng = np.random.default_rng(0)
    true = rng.normal(size=(4000, 4))
    labels = np.array([rng.choice(4, p=np.exp(t) / np.exp(t).sum()) for t in true])
    logits = 4.0 * true  # the right ranking, four times too sharp
    metrics, rows = calibration(logits[:2000], labels[:2000], logits[2000:], labels[2000:])
    assert metrics["temperature"] == pytest.approx(4.0, rel=0.15)
    raw = expected_calibration_error(labels[2000:], logits[2000:])
    assert metrics["ece_ts"] < raw / 3 and raw > 0.1
    table = pd.DataFrame(rows)
    counts = table[table["name"] == "reliability:count"]["value"]
    assert counts.sum() == 2000 and set(table["kind"]) == {"reliability"}
    empty, none = calibration(logits[:0], labels[:0], logits, labels)
    assert np.isnan(empty["ece_ts"]) and none == []


# ------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def suite_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    out = root / "runs"
    args = [
        "--datasets", SUITE, "--fusions", "concat_mlp,late_fusion,film", "--seeds", "0", "--split-seeds", "0,1",
        "--train-fractions", "0.5,1", "--epochs", "1", "--dim", "16", "--batch-size", "32", "--no-unimodal",
        "--data-dir", str(root / "data"), "--out", str(out), "--eval", "robustness",
        "--protocols", "missing_image:rates=0;1,missing_text:rates=0;1",
    ]  # fmt: skip
    result = CliRunner().invoke(bench, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out, " ".join(result.output.split())


@pytest.mark.slow
def test_a_suite_bench_records_every_variant_and_prints_the_cross_dataset_summary(suite_runs):
    out, output = suite_runs
    runs = pd.read_parquet(out / "results.parquet")
    assert len(runs) == 2 * 2 * 2 * 3 and set(runs["status"]) == {"ok"}
    assert set(runs["dataset"]) == {
        canonical_dataset(f"synth:{TINY}"),
        canonical_dataset(f"synth:{TINY},synth_seed=1"),
    }
    assert set(runs["split_seed"]) == {0, 1} and set(runs["train_fraction"]) == {0.5, 1.0}
    assert runs.groupby("dataset")["data_fingerprint"].nunique().eq(1).all()  # one data version each
    assert {"test_ece", "test_ece_ts", "test_temperature"} <= set(runs.columns)
    assert "across 2 datasets" in output and "(ROPE ±1 pt): P(equivalent) =" in output
    assert "stratified bootstrap over runs (seed × split_seed)" in output
    assert output.count("leaderboard · synth") == 2


@pytest.mark.slow
def test_report_formats_show_the_suite(suite_runs, tmp_path):
    out, _ = suite_runs
    for fmt, name in (("md", "r.md"), ("latex", "r.tex"), ("csv", "r.csv")):
        result = CliRunner().invoke(
            main, ["report", str(out), "--format", fmt, "--out", str(tmp_path / name)]
        )
        assert result.exit_code == 0, result.output
    assert "across 2 datasets" in (tmp_path / "r.md").read_text()
    assert "tab:fusionzoo-suite" in (tmp_path / "r.tex").read_text()
    summary = pd.read_csv(tmp_path / "r.suite.csv")
    assert set(summary["method"]) == {"concat_mlp", "late_fusion", "film"} and summary["runs"].eq(4).all()
    assert len(pd.read_csv(tmp_path / "r.csv")) == 6  # the per-dataset leaderboard rows, full size only


@pytest.mark.slow
def test_the_suite_report_in_headless_chromium(suite_runs):
    pytest.importorskip("playwright.sync_api", reason="needs playwright")
    from fusionzoo.report.browser import chromium_executable, offline_page

    if chromium_executable() is None:
        pytest.skip("no chromium executable (apt-get install chromium)")
    out, _ = suite_runs
    assert CliRunner().invoke(main, ["report", str(out)]).exit_code == 0
    with offline_page(out / "report.html") as offline:
        page = offline.page
        sections = page.evaluate("Array.from(document.querySelectorAll('main section')).map(s => s.id)")
        cd = page.evaluate(
            "Array.from(document.querySelectorAll('#sec-suite .fz-static img')).map(i => [i.complete, i.naturalWidth])"
        )
        plots = page.evaluate(
            "['calibration', 'learning_curves'].map(s => document.querySelectorAll('#sec-' + s + ' .main-svg').length)"
        )
        contributions = page.evaluate("document.querySelector('#sec-contributions table').innerText")
        errors = list(offline.errors)
    assert not errors, errors
    assert {"sec-suite", "sec-calibration", "sec-learning_curves", "sec-contributions"} <= set(sections)
    assert cd and all(done and width > 100 for done, width in cd)  # the critical-difference diagram
    assert all(n >= 2 for n in plots), plots  # a reliability diagram / learning curve per dataset
    assert "uses both" in contributions and "late_fusion" in contributions


@pytest.mark.slow
def test_a_suite_dry_run_in_a_real_process(tmp_path):
    command = [sys.executable, "-m", "fusionzoo.cli", "bench", "--datasets", SUITE, "--split-seeds", "0,1",
               "--fusions", "concat_mlp", "--seeds", "0", "--no-unimodal", "--data-dir", str(tmp_path / "d"),
               "--out", str(tmp_path / "r"), "--dry-run"]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "250"}
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        "grid: 4 runs" in result.stdout
        and f"{canonical_dataset(f'synth:{TINY}')}|split_seed=1" in result.stdout
    )
    with pytest.raises(ConfigError, match="given twice"):
        Experiment(load_config(None).with_overrides({"bench.datasets": ["synth", "synth"]})).data_keys()


@pytest.mark.slow
def test_the_suite_report_page_holds_every_new_section(suite_runs):
    """The page as written (no browser needed): the cross-dataset section with its CD diagram and
    P(A > B) table, calibration, learning curves and contributions, each with content."""
    import re

    out, _ = suite_runs
    assert CliRunner().invoke(main, ["report", str(out)]).exit_code == 0
    page = (out / "report.html").read_text()
    bodies = {
        name: re.search(rf'<section id="sec-{name}".*?</section>', page, re.S).group(0)
        for name in ("suite", "calibration", "learning_curves", "contributions")
    }
    assert "data:image/png;base64" in bodies["suite"] and "P(row &gt; column)" in bodies["suite"]
    assert "P(equivalent)" in bodies["suite"] and "seed × split_seed" in bodies["suite"]
    assert bodies["calibration"].count("reliability diagram") >= 2 and "temperature" in bodies["calibration"]
    assert bodies["learning_curves"].count("learning curves") >= 2
    assert "uses both" in bodies["contributions"]


def test_the_new_sections_say_why_they_are_absent_on_a_one_dataset_runs_directory(tmp_path):
    """On the report tests' synthetic runs directory (one dataset, one training size, results without
    the calibration columns, no robustness rows): each new section is absent with its reason."""
    import report_tables as rt

    from fusionzoo import registry
    from fusionzoo.report.base import ResultsView

    view = ResultsView.of(rt.build_runs_dir(tmp_path, optional=False))
    missing = {n: registry.create("reporter", n).render(view, "section").missing for n in
               ("suite", "calibration", "learning_curves", "contributions")}  # fmt: skip
    assert "fewer than two datasets" in missing["suite"] and "test_ece" in missing["calibration"]
    assert "--train-fractions" in missing["learning_curves"] and "fusionzoo eval" in missing["contributions"]
    assert registry.create("reporter", "suite").render(view, "md") == ""
