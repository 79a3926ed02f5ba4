"""Average ranks, Friedman test and critical difference (fusionzoo.results.cross_ranks) against autorank,
pandas and Demšar's table."""

from __future__ import annotations

import math

import autorank
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from fusionzoo.results.cross_dataset import CrossDatasetError
from fusionzoo.results.cross_ranks import _without_autorank, cd_figure, critical_difference, rank_analysis

# Demšar (2006), Table 5(a): Nemenyi q_0.05 for k = 2..6 classifiers
Q_005 = {2: 1.960, 3: 2.343, 4: 2.569, 5: 2.728, 6: 2.850}


def table(n: int, k: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.5, 0.9, (n, k)) + np.linspace(0.1, 0, k)  # m0 tends to win
    return pd.DataFrame(scores, columns=[f"m{i}" for i in range(k)])


@pytest.mark.parametrize(("n", "k"), [(3, 3), (3, 5), (6, 4), (8, 3)])
def test_average_ranks_are_pandas_rank_means(n, k):
    data = table(n, k)
    analysis = rank_analysis(data)
    expected = data.rank(axis=1, ascending=False).mean()
    pd.testing.assert_series_equal(analysis.mean_ranks.sort_index(), expected.sort_index(), check_names=False)
    assert list(analysis.mean_ranks) == sorted(analysis.mean_ranks)  # best (lowest) first
    assert (analysis.source == "autorank") == (n >= 5)


@pytest.mark.parametrize(("k", "n"), [(3, 3), (4, 6), (5, 10)])
def test_critical_difference_is_demsars_formula(k, n):
    assert critical_difference(k, n) == pytest.approx(Q_005[k] * math.sqrt(k * (k + 1) / (6 * n)), abs=2e-3)


def test_autorank_is_used_from_five_datasets_and_the_fallback_agrees_with_it():
    data = table(6, 4, seed=1)
    analysis = rank_analysis(data)
    assert analysis.source == "autorank" and analysis.result is not None
    assert analysis.test == "friedman" and analysis.cd == pytest.approx(analysis.result.cd)
    fallback = _without_autorank(data, 0.05)  # what < 5 datasets get, on the same table
    pd.testing.assert_series_equal(fallback.mean_ranks.sort_index(), analysis.mean_ranks.sort_index())
    assert fallback.pvalue == pytest.approx(analysis.pvalue) and fallback.cd == pytest.approx(analysis.cd)
    two = rank_analysis(data[["m0", "m1"]])
    assert two.test == "wilcoxon" and two.cd is None
    assert _without_autorank(data[["m0", "m1"]], 0.05).pvalue == pytest.approx(two.pvalue)


def test_a_small_suite_gets_ranks_and_a_test_although_autorank_refuses_it():
    data = table(3, 4)
    with pytest.raises(ValueError, match="at least five"):
        autorank.autorank(data)
    analysis = rank_analysis(data)
    assert analysis.test == "friedman" and "autorank needs >= 5 datasets, got 3" in analysis.source
    assert 0 <= analysis.pvalue <= 1 and analysis.cd == pytest.approx(critical_difference(4, 3))
    assert analysis.note.startswith("Friedman over 3 datasets, 4 methods: p = ")


def test_a_clear_winner_differs_from_the_last_by_more_than_the_cd():
    data = pd.DataFrame({"a": np.arange(10) + 3.0, "b": np.arange(10) + 2.0, "c": np.arange(10) + 1.0})
    analysis = rank_analysis(data)
    assert analysis.significant and list(analysis.mean_ranks.index) == ["a", "b", "c"]
    assert analysis.differs_from("a").to_dict() == {"a": False, "b": False, "c": True}  # CD = 1.05 ranks


def test_edge_cases_one_dataset_one_method_nan_ties():
    one = rank_analysis(table(1, 3))
    assert one.test == "" and math.isnan(one.pvalue) and one.cd is None and one.note == "one dataset: no test"
    with pytest.raises(CrossDatasetError, match="at least 2 methods"):
        rank_analysis(table(4, 1))
    holed = table(4, 3)
    holed.iloc[0, 1] = np.nan
    with pytest.raises(CrossDatasetError, match="has NaN"):
        rank_analysis(holed)
    ties = rank_analysis(pd.DataFrame(0.7, index=range(3), columns=["a", "b", "c"]))
    assert (ties.mean_ranks == 2.0).all() and not ties.significant and not ties.differs_from("a").any()


def test_cd_figure_is_autoranks_diagram_and_leaves_pyplot_clean():
    before = plt.get_fignums()
    for analysis in (rank_analysis(table(3, 4)), rank_analysis(table(6, 4))):
        figure = cd_figure(analysis)
        assert isinstance(figure, Figure) and plt.get_fignums() == before
        texts = {t.get_text() for t in figure.axes[0].texts}
        assert {"m0", "m1", "m2", "m3", "CD"} <= texts
    assert cd_figure(rank_analysis(table(6, 2))) is None
