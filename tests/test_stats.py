"""Leaderboard statistics, checked against scipy and statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests

from fusionzoo.results.stats import holm, mcnemar, paired_t_test, summarize, t_interval


def _row(fusion, seed, value, status="ok", **extra):
    return {
        "dataset": "synth",
        "fusion": fusion,
        "head": "mlp",
        "seed": seed,
        "config_hash": "h",
        "config_id": f"{fusion}-h",
        "run_id": f"{fusion}-{seed}",
        "status": status,
        "test_accuracy": value,
        "params": 10,
        "train_time": 1.0,
        **extra,
    }


# ------------------------------------------------------------------------------------ t interval
def test_t_interval_matches_scipy_and_ignores_nan():
    values = [0.81, 0.84, 0.79, 0.88]
    low, high = sps.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=sps.sem(values))
    mean, half = t_interval(values)
    assert mean == pytest.approx(np.mean(values)) and half == pytest.approx((high - low) / 2)
    assert t_interval([*values, float("nan")]) == pytest.approx((mean, half))
    assert math.isnan(t_interval([0.5])[1]) and math.isnan(t_interval([])[0])


# ------------------------------------------------------------------------------------ paired t
def test_paired_t_matches_scipy_ttest_rel():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.7, 0.9, 5)
    b = a - rng.uniform(0.0, 0.05, 5)
    assert paired_t_test(a, b) == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-12)


def test_paired_t_with_a_constant_difference_is_undefined_not_zero():
    """Two seeds, both 10 points worse: zero variance of the differences -> no t-test (NaN), never p=0."""
    assert math.isnan(paired_t_test([0.9, 0.8], [0.8, 0.7]))
    assert math.isnan(paired_t_test([0.5, 0.5], [0.4, 0.4]))
    assert paired_t_test([0.5, 0.6], [0.5, 0.6]) == 1.0  # identical on every seed: no difference at all
    assert math.isnan(paired_t_test([0.5], [0.4]))


def test_constant_difference_from_two_seeds_gets_no_star():
    rows = [_row("fluid", s, v) for s, v in ((0, 0.9), (1, 0.8))]
    rows += [_row("film", s, v) for s, v in ((0, 0.8), (1, 0.7))]
    table = summarize(pd.DataFrame(rows)).set_index("fusion")
    assert math.isnan(table.loc["film", "p_ttest"])
    assert not table.loc["film", "significant"] and table.loc["film", "test"] == ""


# ------------------------------------------------------------------------------------ McNemar
@pytest.mark.parametrize(("b", "c"), [(6, 0), (9, 3), (30, 18), (40, 70)])
def test_mcnemar_on_one_seed_matches_statsmodels(b, c):
    both, neither = 50, 7
    correct_a = np.array([True] * both + [True] * b + [False] * c + [False] * neither)
    correct_b = np.array([True] * both + [False] * b + [True] * c + [False] * neither)
    table = [[both, b], [c, neither]]
    expected = (
        sm_mcnemar(table, exact=True).pvalue
        if b + c <= 50
        else sm_mcnemar(table, exact=False, correction=True).pvalue
    )
    assert mcnemar(correct_a, correct_b) == pytest.approx(expected, rel=1e-10)


def test_mcnemar_over_seeds_uses_each_test_row_once():
    rng = np.random.default_rng(1)
    a = rng.random(60) < 0.8
    b = rng.random(60) < 0.6
    one_seed = mcnemar(a, b)
    # the same predictions on three seeds are no more evidence than one seed
    assert mcnemar(np.stack([a, a, a]), np.stack([b, b, b])) == pytest.approx(one_seed)
    # otherwise: rows where A's seed-averaged correctness beats B's vs the reverse (a sign test)
    seeds_a = rng.random((3, 60)) < 0.8
    seeds_b = rng.random((3, 60)) < 0.6
    wins = int((seeds_a.mean(0) > seeds_b.mean(0)).sum())
    losses = int((seeds_a.mean(0) < seeds_b.mean(0)).sum())
    if wins + losses <= 50:
        expected = sps.binomtest(wins, wins + losses, 0.5).pvalue
    else:
        expected = sm_mcnemar([[0, wins], [losses, 0]], exact=False, correction=True).pvalue
    assert mcnemar(seeds_a, seeds_b) == pytest.approx(expected, rel=1e-10)


def test_summarize_mcnemar_is_not_inflated_by_the_number_of_seeds():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 40)
    best = np.where(rng.random(40) < 0.85, labels, (labels + 1) % 3)
    other = np.where(rng.random(40) < 0.70, labels, (labels + 1) % 3)
    predictions = {}
    rows = []
    for seed in range(3):
        for fusion, pred in (("fluid", best), ("film", other)):
            rows.append(_row(fusion, seed, float((pred == labels).mean()) + 0.001 * seed))
            predictions[f"{fusion}-{seed}"] = (pred, labels)
    table = summarize(pd.DataFrame(rows), predictions=predictions.get).set_index("fusion")
    assert table.loc["film", "p_mcnemar"] == pytest.approx(mcnemar(best == labels, other == labels))


# ------------------------------------------------------------------------------------ Holm
def test_holm_matches_statsmodels():
    pvalues = [0.01, 0.04, float("nan"), 0.03, 0.2, 0.001]
    finite = [p for p in pvalues if not math.isnan(p)]
    expected = iter(multipletests(finite, method="holm")[1])
    adjusted = holm(pvalues)
    for p, adj in zip(pvalues, adjusted, strict=True):
        if math.isnan(p):
            assert math.isnan(adj)
        else:
            assert adj == pytest.approx(next(expected))


# ------------------------------------------------------------------------------------ summarize
def test_summarize_counts_mean_std_ci_over_the_same_finite_runs():
    rows = [_row("fluid", 0, 0.8), _row("fluid", 1, 0.9), _row("fluid", 2, float("nan"))]
    row = summarize(pd.DataFrame(rows)).iloc[0]
    mean, half = t_interval([0.8, 0.9])
    assert row["n"] == 2 and row["nan_runs"] == 1 and row["runs"] == 3
    assert row["mean"] == pytest.approx(mean) and row["ci"] == pytest.approx(half)
    assert row["std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert not row["complete"]  # seed 2 has no usable value


def test_failed_and_diverged_runs_are_counted_and_an_incomplete_config_is_not_ranked_as_complete():
    rows = [_row("film", s, v) for s, v in ((0, 0.80), (1, 0.81), (2, 0.82))]
    # fluid's surviving seeds look better, but one seed diverged and one failed
    rows += [_row("fluid", 0, 0.95), _row("fluid", 1, float("nan"), "diverged")]
    rows += [_row("fluid", 2, float("nan"), "failed")]
    table = summarize(pd.DataFrame(rows))
    by = table.set_index("fusion")
    assert (by.loc["fluid", "n"], by.loc["fluid", "failed"], by.loc["fluid", "diverged"]) == (1, 1, 1)
    assert by.loc["fluid", "mean"] == pytest.approx(0.95)  # the mean is over ok runs only
    assert by.loc["film", "complete"] and not by.loc["fluid", "complete"]
    assert by.loc["film", "is_best"] and by.loc["film", "rank"] == 1 and by.loc["fluid", "rank"] == 2
    assert list(table["fusion"]) == ["film", "fluid"]
    # planned seeds can be given explicitly: film is then missing seed 3
    by = summarize(pd.DataFrame(rows), seeds=[0, 1, 2, 3]).set_index("fusion")
    assert not by.loc["film", "complete"] and by.loc["film", "planned"] == 4


def test_an_incomplete_configuration_with_a_higher_mean_is_not_starred_worse():
    """Two-sided tests, sign checked: film differs from the best (fluid, complete) but is *better* on the
    seeds both have; it ranks below fluid because one seed failed, and gets no "worse" star."""
    rows = [_row("fluid", s, v) for s, v in ((0, 0.80), (1, 0.81), (2, 0.82))]
    rows += [_row("film", 0, 0.90), _row("film", 1, 0.92), _row("film", 2, float("nan"), "failed")]
    by = summarize(pd.DataFrame(rows)).set_index("fusion")
    assert by.loc["fluid", "is_best"] and not by.loc["film", "complete"]
    assert by.loc["film", "p_adjusted"] < 0.05  # the two differ ...
    assert not by.loc["film", "significant"] and by.loc["film", "better_significant"]  # ... the other way
    # the same numbers the other way round: film worse than the best is starred
    rows = [_row("fluid", s, v) for s, v in ((0, 0.90), (1, 0.92), (2, 0.93))]
    rows += [_row("film", s, v) for s, v in ((0, 0.80), (1, 0.81), (2, 0.825))]
    by = summarize(pd.DataFrame(rows)).set_index("fusion")
    assert by.loc["film", "significant"] and not by.loc["film", "better_significant"]


def test_lower_is_better_metrics_star_the_higher_values():
    rows = [_row("fluid", s, v) for s, v in ((0, 0.10), (1, 0.11), (2, 0.12))]
    rows += [_row("film", s, v) for s, v in ((0, 0.30), (1, 0.32), (2, 0.31))]
    by = summarize(pd.DataFrame(rows), direction="min").set_index("fusion")
    assert by.loc["fluid", "is_best"] and by.loc["film", "significant"]


def test_a_configuration_whose_runs_all_failed_is_never_best_and_has_no_rank():
    only_failed = summarize(pd.DataFrame([_row("film", s, float("nan"), "failed") for s in (0, 1)]))
    assert not only_failed["is_best"].any() and only_failed["rank"].isna().all()
    rows = [_row("film", s, float("nan"), "failed") for s in (0, 1)]
    rows += [_row("fluid", 0, 0.8), _row("fluid", 1, float("nan"), "diverged")]
    by = summarize(pd.DataFrame(rows)).set_index("fusion")
    assert by.loc["fluid", "is_best"] and by.loc["fluid", "rank"] == 1
    assert not by.loc["film", "is_best"] and pd.isna(by.loc["film", "rank"])


def test_two_data_versions_of_a_dataset_are_ranked_and_tested_apart():
    """Runs of one dataset on two data fingerprints were tested on different test sets: two leaderboards,
    each with its own best, and no test across them (pairwise too)."""
    from fusionzoo.results.stats import pairwise

    rows = []
    for version, values in (("old", (0.95, 0.96)), ("new", (0.80, 0.81))):
        for fusion, shift in (("fluid", 0.0), ("film", -0.05)):
            for seed, value in enumerate(values):
                rows.append(
                    _row(
                        fusion,
                        seed,
                        value + shift + 0.001 * seed * (fusion == "film"),
                        data_fingerprint=version,
                    )
                    | {"config_id": f"{fusion}-{version}", "run_id": f"{fusion}-{version}-{seed}"}
                )
    table = summarize(pd.DataFrame(rows))
    assert table.groupby("data_fingerprint")["is_best"].sum().to_dict() == {"new": 1, "old": 1}
    assert set(table.loc[table["is_best"], "fusion"]) == {"fluid"}
    assert sorted(table["rank"]) == [1, 1, 2, 2]
    pairs = pairwise(pd.DataFrame(rows))
    assert len(pairs) == 2 and set(pairs["data_fingerprint"]) == {"old", "new"}
    assert (pairs["config_id_a"].str.split("-").str[1] == pairs["config_id_b"].str.split("-").str[1]).all()
