"""Cross-dataset statistics (fusionzoo.results.cross_dataset / cross_estimates / cross_summary), checked
against rliable's and baycomp's own functions and hand-worked cases."""

from __future__ import annotations

import math

import baycomp
import numpy as np
import pandas as pd
import pytest
from rliable import metrics as rly
from scipy import stats as sps

from fusionzoo.results.cross_dataset import (
    CrossDatasetError,
    chance_accuracy,
    normalise_scores,
    prepare_runs,
    scores_from_results,
)
from fusionzoo.results.cross_estimates import (
    _improvement,
    _iqm_and_mean,
    equivalence,
    improvement_matrix,
    interval_estimates,
    probability_of_improvement,
)
from fusionzoo.results.cross_summary import COLUMNS, cross_dataset_summary


def tidy(matrices: dict[str, np.ndarray], datasets: list[str] | None = None) -> pd.DataFrame:
    """The runs table of {method: (runs × datasets) scores} (NaN = a failed run)."""
    rows = []
    for method, matrix in matrices.items():
        names = datasets or [f"d{j}" for j in range(matrix.shape[1])]
        for seed in range(matrix.shape[0]):
            for j, dataset in enumerate(names):
                rows.append({"dataset": dataset, "method": method, "seed": seed, "score": matrix[seed, j]})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------ rliable
def test_iqm_and_mean_are_rliables_on_a_known_array():
    matrix = np.arange(1.0, 13.0).reshape(4, 3) / 20  # 4 runs × 3 datasets, values 0.05 … 0.60
    runs = prepare_runs(tidy({"a": matrix, "b": matrix[::-1]}), normalise="none")
    row = interval_estimates(runs, reps=200).set_index("method").loc["a"]
    # the 25% trimmed mean of the 12 values drops 3 at each end: mean of 4..9 / 20 = 6.5 / 20
    assert row["iqm"] == pytest.approx(6.5 / 20)
    assert row["iqm"] == pytest.approx(rly.aggregate_iqm(matrix))
    assert row["iqm"] == pytest.approx(sps.trim_mean(matrix.ravel(), 0.25))
    assert row["mean"] == pytest.approx(rly.aggregate_mean(matrix))
    assert row["iqm_low"] <= row["iqm"] <= row["iqm_high"] and row["runs"] == 12 and row["datasets"] == 3


def test_probability_of_improvement_hand_case():
    # dataset 0: every run of a beats every run of b -> 1; dataset 1: a = [1, 1], b = [1, 2]: of the
    # 4 pairs two tie (½ each) and two lose -> (0.5 + 0 + 0.5 + 0) / 4 = 0.25; mean over datasets 0.625
    a = np.array([[3.0, 1.0], [4.0, 1.0]])
    b = np.array([[1.0, 1.0], [2.0, 2.0]])
    runs = prepare_runs(tidy({"a": a, "b": b}), normalise="none")
    p, low, high = probability_of_improvement(runs, "a", "b", reps=500)
    assert p == pytest.approx(0.625) == rly.probability_of_improvement(a, b)
    assert low <= p <= high
    matrix = improvement_matrix(runs)
    assert matrix.loc["a", "b"] == pytest.approx(0.625) and matrix.loc["b", "a"] == pytest.approx(0.375)
    assert math.isnan(matrix.loc["a", "a"])


def test_vectorised_bootstrap_statistics_equal_rliables_functions():
    """The bootstrap evaluates the statistics on (resamples, runs) arrays; each resample's value must be
    rliable's function of that resample (integer scores: many ties)."""
    rng = np.random.default_rng(0)
    x = [rng.integers(0, 4, (50, 3)).astype(float) for _ in range(3)]  # 50 resamples, 3 runs, 3 datasets
    y = [rng.integers(0, 4, (50, 4)).astype(float) for _ in range(3)]
    iqm, mean = _iqm_and_mean(x)
    improvement = _improvement(x, y)
    for r in range(50):
        matrix_x = np.stack([t[r] for t in x], axis=1)  # (runs × datasets)
        matrix_y = np.stack([t[r] for t in y], axis=1)
        assert iqm[r] == pytest.approx(rly.aggregate_iqm(matrix_x))
        assert mean[r] == pytest.approx(rly.aggregate_mean(matrix_x))
        assert improvement[r] == pytest.approx(rly.probability_of_improvement(matrix_x, matrix_y))


def test_bootstrap_is_stratified_by_dataset():
    """Two datasets far apart, each with a tiny seed spread: resampling within each dataset gives a
    narrow interval; pooling the runs of both datasets (an unstratified bootstrap) would not."""
    matrix = np.array([[0.20, 0.90], [0.21, 0.91], [0.19, 0.89], [0.20, 0.90]])
    runs = prepare_runs(tidy({"a": matrix}), normalise="none")
    row = interval_estimates(runs, reps=2000).iloc[0]
    assert row["mean_high"] - row["mean_low"] < 0.02
    pooled = sps.bootstrap((matrix.ravel(),), np.mean, n_resamples=2000, method="percentile", rng=0)
    assert pooled.confidence_interval.high - pooled.confidence_interval.low > 0.3


def test_intervals_are_seeded_and_nan_with_one_run_per_dataset():
    rng = np.random.default_rng(1)
    runs = prepare_runs(tidy({"a": rng.random((3, 3))}), normalise="none")
    first, again = interval_estimates(runs, reps=300, seed=3), interval_estimates(runs, reps=300, seed=3)
    pd.testing.assert_frame_equal(first, again)
    assert not interval_estimates(runs, reps=300, seed=4).equals(first)
    single = interval_estimates(prepare_runs(tidy({"a": rng.random((1, 3))}), normalise="none"), reps=100)
    assert single[["iqm_low", "iqm_high", "mean_low", "mean_high"]].isna().all(axis=None)


def test_interval_matches_rliable_library_when_it_imports():
    """rliable.library (its stratified bootstrap) needs arch < 8, which does not import under pandas 3;
    where it imports, the intervals agree up to Monte-Carlo error."""
    try:
        from rliable import library
    except Exception as exc:  # arch 7.2 raises TypeError on import under pandas 3
        pytest.skip(f"rliable.library does not import here: {type(exc).__name__}: {exc}")
    rng = np.random.default_rng(2)
    matrix, other = rng.random((5, 3)), rng.random((4, 3))
    np.random.seed(0)  # rliable draws its resamples from numpy's global generator
    _, interval = library.get_interval_estimates(
        {"a": matrix}, lambda x: np.array([rly.aggregate_iqm(x), rly.aggregate_mean(x)]), reps=20000
    )
    _, improvement = library.get_interval_estimates(
        {"ab": (matrix, other)}, lambda x, y: np.array([rly.probability_of_improvement(x, y)]), reps=5000
    )
    runs = prepare_runs(tidy({"a": matrix, "b": other}), normalise="none")
    ours = interval_estimates(runs, reps=20000).iloc[0]
    np.testing.assert_allclose(
        [ours["iqm_low"], ours["mean_low"], ours["iqm_high"], ours["mean_high"]],
        interval["a"].ravel(),
        atol=0.01,
    )
    # P(a > b) takes values on a grid of 1/60 (5 × 4 runs, 3 datasets): within two steps
    _, low, high = probability_of_improvement(runs, "a", "b", reps=20000)
    np.testing.assert_allclose([low, high], improvement["ab"].ravel(), atol=2 / 60 + 1e-9)


# ------------------------------------------------------------------------------------ inputs
def test_failed_runs_are_excluded_and_counted_never_zero():
    rng = np.random.default_rng(3)
    matrix = rng.uniform(0.5, 0.9, (3, 2))
    frame = tidy({"a": matrix, "b": matrix + 0.01})
    clean = interval_estimates(prepare_runs(frame, normalise="none"), reps=100)
    extra = pd.DataFrame(
        [
            {"dataset": "d0", "method": "a", "seed": 7, "score": np.nan, "status": "failed"},
            {"dataset": "d1", "method": "a", "seed": 8, "score": 0.0, "status": "diverged"},
        ]
    )
    runs = prepare_runs(pd.concat([frame.assign(status="ok"), extra]), normalise="none")
    assert runs.failed.to_dict() == {"a": 2, "b": 0}
    pd.testing.assert_frame_equal(interval_estimates(runs, reps=100), clean)


def test_incomplete_methods_and_empty_datasets_are_left_out_with_a_note():
    frame = tidy({"a": np.full((2, 3), 0.8), "b": np.full((2, 3), 0.7), "c": np.full((2, 3), 0.6)})
    frame.loc[(frame["method"] == "c") & (frame["dataset"] == "d2"), "score"] = np.nan
    frame.loc[frame["dataset"] == "d1", "score"] = np.nan
    runs = prepare_runs(frame, normalise="none")
    assert runs.datasets == ("d0", "d2")
    assert runs.methods == ("a", "b")
    assert any("dataset d1" in n for n in runs.notes) and any(
        n.startswith("c: no finished run on d2") for n in runs.notes
    )
    with pytest.raises(CrossDatasetError, match="no method has a finished run"):
        prepare_runs(frame.assign(score=np.nan), normalise="none")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="seed"), "lacks seed"),
        (lambda f: pd.concat([f, f.iloc[:1]]), r"share \(dataset, method, seed\) = \(d0, a, 0\)"),
        (lambda f: f.iloc[:0], "empty"),
    ],
)
def test_bad_tables_are_named(change, message):
    frame = tidy({"a": np.full((2, 2), 0.5)})
    with pytest.raises(CrossDatasetError, match=message):
        prepare_runs(change(frame), normalise="none")


def test_normalisations():
    frame = pd.DataFrame(
        {
            "dataset": ["x", "x", "y", "y"],
            "method": ["a", "b", "a", "b"],
            "seed": 0,
            "score": [0.55, 0.1, 0.6, 0.8],
        }
    )
    chance = normalise_scores(frame, "chance", chance={"x": 0.1, "y": 0.2})
    assert chance.tolist() == pytest.approx([0.5, 0.0, 0.5, 0.75])  # (0.55-0.1)/0.9, (0.6-0.2)/0.8 ...
    assert normalise_scores(frame.assign(chance=[0.1, 0.1, 0.2, 0.2]), "chance").tolist() == pytest.approx(
        chance.tolist()
    )
    baseline = normalise_scores(frame, "baseline", baseline="b")  # b's own score -> 0
    assert baseline.tolist() == pytest.approx([0.45 / 0.9, 0.0, -0.2 / 0.2, 0.0])
    z = normalise_scores(frame, "zscore")
    assert z.tolist() == pytest.approx([0.7071068, -0.7071068, -0.7071068, 0.7071068])
    assert normalise_scores(frame, "none").tolist() == frame["score"].tolist()
    with pytest.raises(CrossDatasetError, match="needs each dataset's chance level"):
        normalise_scores(frame, "chance")
    with pytest.raises(CrossDatasetError, match="chance levels missing for y"):
        normalise_scores(frame, "chance", chance={"x": 0.1})
    with pytest.raises(CrossDatasetError, match=r"lie in \[0, 1\): x"):
        normalise_scores(frame, "chance", chance={"x": 1.0, "y": 0.2})
    with pytest.raises(CrossDatasetError, match="needs a baseline"):
        normalise_scores(frame, "baseline", baseline="nope")
    with pytest.raises(CrossDatasetError, match="normalise must be one of"):
        prepare_runs(frame, normalise="minmax")


def test_chance_accuracy_and_scores_from_results():
    classes = pd.DataFrame(
        {
            "data_fingerprint": ["f1"] * 3 + ["f2"] * 2,
            "class_id": [0, 1, 2, 0, 1],
            "test_count": [6, 3, 1, 5, 5],
        }
    )
    table = chance_accuracy(classes).set_index("data_fingerprint")
    assert table.loc["f1", "majority"] == pytest.approx(0.6) and table.loc["f1", "uniform"] == pytest.approx(
        1 / 3
    )
    assert table.loc["f2", "majority"] == pytest.approx(0.5) and table.loc["f2", "num_classes"] == 2
    results = pd.DataFrame(
        {"dataset": ["s", "s"], "fusion": ["film", "gated"], "head": ["linear", "linear"], "seed": [0, 0],
         "status": ["ok", "failed"], "test_accuracy": [0.7, np.nan]}
    )  # fmt: skip
    frame = scores_from_results(results)
    assert frame["method"].tolist() == ["film", "gated"]  # the head is the same everywhere: left out
    assert list(frame.columns) == ["dataset", "method", "seed", "score", "status"]
    results.loc[1, "head"] = "mlp"
    assert scores_from_results(results)["method"].tolist() == ["film + linear", "gated + mlp"]


# ------------------------------------------------------------------------------------ baycomp
def test_equivalence_against_baycomps_own_cases():
    rng = np.random.default_rng(4)
    y = rng.uniform(0.5, 0.9, (1, 6))
    runs = prepare_runs(tidy({"a": y + 0.05, "b": y, "c": y.copy()}), normalise="none")
    better = equivalence(runs, "a", "b", rope=0.01)
    assert better.p_a_better > 0.99 and better.verdict == "better"
    assert (better.p_a_better, better.p_equivalent, better.p_b_better) == pytest.approx(
        baycomp.two_on_multiple(y[0] + 0.05, y[0], rope=0.01, nsamples=10_000, random_state=0)
    )
    assert equivalence(runs, "b", "a").verdict == "worse"
    same = equivalence(runs, "c", "b", rope=0.01)
    assert same.p_equivalent > 0.95 and same.verdict == "equivalent"
    assert same.text.startswith("c ≈ b (ROPE ±1 pt): P(equivalent) = 1.00, P(c better) = 0.00")
    no_rope = equivalence(runs, "a", "b", rope=0.0)
    assert no_rope.p_equivalent == 0.0 and no_rope.p_a_better + no_rope.p_b_better == pytest.approx(1.0)
    with pytest.raises(CrossDatasetError, match="not among the compared methods"):
        equivalence(runs, "a", "zzz")
    one = prepare_runs(tidy({"a": y[:, :1], "b": y[:, :1]}), normalise="none")
    with pytest.raises(CrossDatasetError, match="needs at least 2"):
        equivalence(one, "a", "b")


# ------------------------------------------------------------------------------------ summary
def small_suite(split_seeds: bool = False) -> pd.DataFrame:
    """3 datasets × 4 methods × 3 seeds: film +3 pt, fluid +1.5 pt, gated +0.5 pt over concat_mlp."""
    rng = np.random.default_rng(5)
    rows = []
    for dataset, base in {"a": 0.8, "b": 0.7, "c": 0.6}.items():
        for method, gain in {"film": 0.03, "concat_mlp": 0.0, "gated": 0.005, "fluid": 0.015}.items():
            for seed in range(3):
                row = {
                    "dataset": dataset,
                    "method": method,
                    "seed": seed,
                    "score": base + gain + rng.normal(0, 0.001),
                }
                rows.append({**row, "split_seed": seed % 2} if split_seeds else row)
    return pd.DataFrame(rows)


CHANCE = {"a": 0.1, "b": 0.2, "c": 0.25}


def test_summary_of_a_small_suite():
    summary = cross_dataset_summary(
        small_suite(), baseline="concat_mlp", chance=CHANCE, reps=500, nsamples=4000
    )
    table = summary.table.set_index("method")
    assert list(summary.table.columns) == list(COLUMNS)
    assert summary.best == "film" and summary.table["method"].iloc[0] == "film"
    assert table.loc["film", "mean_rank"] == 1.0 and table.loc["concat_mlp", "mean_rank"] == 4.0
    assert table.loc["film", "p_vs_baseline"] == 1.0 and math.isnan(table.loc["concat_mlp", "p_vs_baseline"])
    assert table.loc["film", "verdict_baseline"] == "better"
    assert table.loc["gated", "verdict_baseline"] == "equivalent"  # +0.5 pt is inside the ±1 pt ROPE
    assert table.loc["film", "verdict_best"] == "" and table.loc["concat_mlp", "verdict_best"] == "worse"
    assert summary.ranks.test == "friedman" and "autorank needs >= 5" in summary.ranks.source
    assert summary.improvement.loc["film", "concat_mlp"] == 1.0
    lines = summary.lines()
    assert lines[0] == (
        "95% CIs: stratified bootstrap over runs (seed) within each of 3 datasets; they do not cover the "
        "choice of datasets"
    )
    assert any(line.startswith("gated ≈ concat_mlp (ROPE ±1 pt): P(equivalent) = ") for line in lines)
    assert (summary.table["failed"] == 0).all()


def test_summary_names_split_seeds_as_a_variance_source():
    summary = cross_dataset_summary(small_suite(split_seeds=True), normalise="none", reps=100, nsamples=1000)
    assert summary.runs.variance_sources == ("seed", "split_seed")
    assert "over runs (seed × split_seed)" in summary.coverage


def test_summary_edge_cases_one_method_one_dataset_ties():
    one_method = cross_dataset_summary(tidy({"a": np.full((3, 3), 0.5)}), normalise="none", reps=100)
    assert one_method.ranks is None and "one method: nothing to compare" in one_method.notes
    one_dataset = cross_dataset_summary(
        tidy({"a": np.array([[0.6], [0.7]]), "b": np.array([[0.5], [0.55]])}), baseline="b", normalise="none",
        reps=100,
    )  # fmt: skip
    assert one_dataset.ranks.note == "one dataset: no test" and one_dataset.ranks.n_datasets == 1
    assert "one dataset: no equivalence test against the baseline" in one_dataset.notes
    assert one_dataset.table.set_index("method").loc["a", "p_vs_baseline"] == 1.0
    ties = cross_dataset_summary(
        tidy({m: np.full((2, 3), 0.7) for m in ("a", "b", "c")}), baseline="c", normalise="none", reps=100,
        nsamples=2000,
    )  # fmt: skip
    assert (ties.table["mean_rank"] == 2.0).all() and not ties.ranks.significant
    assert (ties.table.set_index("method").loc[["a", "b"], "p_vs_baseline"] == 0.5).all()
    assert set(ties.table["verdict_baseline"]) == {"equivalent", ""}
    best_is_baseline = cross_dataset_summary(
        small_suite(), baseline="film", chance=CHANCE, reps=100, nsamples=1000
    )
    assert set(best_is_baseline.equivalences["role"]) == {"best"}  # each test once
    assert (
        best_is_baseline.table["verdict_baseline"].tolist() == best_is_baseline.table["verdict_best"].tolist()
    )
    with pytest.raises(CrossDatasetError, match="baseline 'zzz' is not among"):
        cross_dataset_summary(small_suite(), baseline="zzz", chance=CHANCE)
