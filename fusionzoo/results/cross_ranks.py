"""Average ranks across datasets, the Friedman test and the critical-difference (CD) diagram (Demšar,
JMLR 2006), with ``autorank``.

Input: a datasets × methods table of per-dataset scores, higher better (the mean over each method's
runs, e.g. :meth:`fusionzoo.results.cross_dataset.Runs.dataset_means`). On each dataset the methods are
ranked 1 = best (ties share the average rank); the **average rank** is the mean over datasets.

- ≥ 5 datasets: ``autorank.autorank(..., order="descending", force_mode="nonparametric")``: with ≥ 3
  methods the Friedman test and the Nemenyi critical difference
  CD = q_α · √(k(k+1) / (6N)) (q_α: the studentized range quantile / √2, e.g. 2.343 for k = 3 at
  α = 0.05); with 2 methods Wilcoxon's signed-rank test (one-sided, as autorank; no CD).
  Non-parametric is forced because normality tests have no power over a handful of datasets.
- 2–4 datasets: autorank refuses (it needs ≥ 5 "performance estimations"); the same quantities are
  computed with the functions autorank calls (pandas ``rank``, ``scipy.stats.friedmanchisquare`` or
  ``scipy.stats.wilcoxon``, statsmodels' ``qsturng``; the tests check they equal autorank's on ≥ 5
  datasets) and ``source`` says so. With 3 datasets the Friedman test can hardly reach p < 0.05 and
  the CD spans most of the rank scale: the diagram then shows (honestly) that nothing is separated.
- 1 dataset: the ranks on it, no test; fewer than 2 methods: an error.

Two methods are *significantly different* (Nemenyi, α) when their average ranks differ by more than
the CD. The Friedman/Nemenyi test treats datasets as the independent units: seeds are averaged first
(more seeds make each rank more reliable, not the test more powerful).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from typing import Any

import autorank
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from autorank._util import RankResult  # the type autorank.plot_stats draws (not re-exported)
from scipy import stats as sps
from statsmodels.stats.libqsturng import qsturng

from fusionzoo.results.cross_dataset import CrossDatasetError

__all__ = ["AUTORANK_MIN_DATASETS", "RankAnalysis", "cd_figure", "critical_difference", "rank_analysis"]

AUTORANK_MIN_DATASETS = 5  # autorank.autorank raises ValueError below this many rows


@dataclass(frozen=True)
class RankAnalysis:
    """Average ranks (best first), the omnibus test and the Nemenyi CD.

    ``mean_ranks``: method → average rank (1 = best); ``test``: ``friedman`` | ``wilcoxon`` | ``""``;
    ``pvalue`` (NaN without a test, or when every dataset ties every method); ``cd``: the critical
    difference (None without Nemenyi); ``significant``: p < alpha; ``source``: ``autorank`` or what
    computed it instead; ``note``: a sentence for the reader; ``result``: autorank's ``RankResult``
    (None when autorank did not run) for ``autorank.create_report``/``latex_table``.
    """

    mean_ranks: pd.Series
    n_datasets: int
    test: str
    pvalue: float
    cd: float | None
    alpha: float
    source: str
    note: str
    result: Any = None

    @property
    def significant(self) -> bool:
        return bool(np.isfinite(self.pvalue) and self.pvalue < self.alpha)

    def differs_from(self, method: str) -> pd.Series:
        """Per method: its average rank differs from ``method``'s by more than the CD (False without
        a CD, and False throughout when the Friedman test is not significant, following Demšar)."""
        if self.cd is None or not self.significant:
            return pd.Series(False, index=self.mean_ranks.index)
        return (self.mean_ranks - self.mean_ranks[method]).abs() > self.cd


def critical_difference(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference q_α · √(k(k+1)/(6N)) for k methods over N datasets (as autorank)."""
    return float(qsturng(1 - alpha, k, np.inf) * np.sqrt(k * (k + 1) / (12 * n)))


def rank_analysis(scores: pd.DataFrame, alpha: float = 0.05) -> RankAnalysis:
    """Ranks, test and CD of a datasets × methods table (see the module docstring)."""
    if scores.shape[1] < 2:
        raise CrossDatasetError(f"ranking needs at least 2 methods, got {scores.shape[1]}")
    if scores.shape[0] < 1:
        raise CrossDatasetError("ranking needs at least 1 dataset")
    if scores.isna().to_numpy().any():
        raise CrossDatasetError("ranking needs a score for every (dataset, method): the table has NaN")
    if not 0 < alpha < 1:
        raise CrossDatasetError(f"alpha must lie in (0, 1), got {alpha}")
    data = pd.DataFrame(scores.to_numpy(dtype=np.float64), columns=[str(c) for c in scores.columns])
    if len(data) >= AUTORANK_MIN_DATASETS:
        return _with_autorank(data, alpha)
    return _without_autorank(data, alpha)


def _without_autorank(data: pd.DataFrame, alpha: float) -> RankAnalysis:
    """What autorank computes (rank means, Friedman or Wilcoxon, the Nemenyi CD), for < 5 datasets."""
    n, k = data.shape
    ranks = _sorted(data.rank(axis="columns", ascending=False).mean())
    if n == 1:
        return RankAnalysis(ranks, 1, "", float("nan"), None, alpha, "pandas rank", "one dataset: no test")
    source = f"scipy/statsmodels (autorank needs >= {AUTORANK_MIN_DATASETS} datasets, got {n})"
    if k == 2:
        p = _wilcoxon(data)
        note = f"{n} datasets, 2 methods: one-sided Wilcoxon signed-rank p = {p:.3g}"
        return RankAnalysis(ranks, n, "wilcoxon", p, None, alpha, source, note)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # every dataset a tie: NaN p
        p = float(sps.friedmanchisquare(*data.T.to_numpy()).pvalue)
    cd = critical_difference(k, n, alpha)
    return RankAnalysis(ranks, n, "friedman", p, cd, alpha, source, _note(n, k, p, cd, alpha))


def _sorted(ranks: pd.Series) -> pd.Series:
    return ranks.sort_values(kind="stable").rename("mean_rank").rename_axis("method")


def _note(n: int, k: int, p: float, cd: float, alpha: float) -> str:
    verdict = "differences among the average ranks" if p < alpha else "no significant difference"
    return f"Friedman over {n} datasets, {k} methods: p = {p:.3g} ({verdict}); Nemenyi CD = {cd:.2f} ranks"


def _wilcoxon(data: pd.DataFrame) -> float:
    """autorank's two-population test: one-sided Wilcoxon of the higher-median column vs the other."""
    larger = int(np.argmax(data.median().to_numpy()))
    diff = data.iloc[:, larger] - data.iloc[:, 1 - larger]
    if np.allclose(diff, 0.0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(
            sps.wilcoxon(data.iloc[:, larger], data.iloc[:, 1 - larger], alternative="greater").pvalue
        )


def _with_autorank(data: pd.DataFrame, alpha: float) -> RankAnalysis:
    n, k = data.shape
    # autorank prints its rank table (autorank 1.3 _create_result_df_skeleton) and warns on constant columns
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = autorank.autorank(data, alpha=alpha, order="descending", force_mode="nonparametric")
    ranks = _sorted(result.rankdf["meanrank"].astype(float))
    p = float(result.pvalue)
    if k == 2:
        note = f"{n} datasets, 2 methods: one-sided Wilcoxon signed-rank p = {p:.3g}"
        return RankAnalysis(ranks, n, "wilcoxon", p, None, alpha, "autorank", note, result)
    cd = float(result.cd)
    return RankAnalysis(ranks, n, "friedman", p, cd, alpha, "autorank", _note(n, k, p, cd, alpha), result)


def cd_figure(analysis: RankAnalysis, width: float = 6.0) -> Any:
    """autorank's critical-difference diagram of ``analysis`` as a matplotlib Figure (the caller saves
    it; it is not left open in pyplot), or None without a CD (2 methods or 1 dataset). Methods joined
    by a bar are not significantly different (Nemenyi); drawn even when the Friedman test is not
    significant, where the bars say so."""
    if analysis.cd is None:
        return None
    if analysis.result is not None:
        result = analysis.result
    else:  # the fields autorank's cd_diagram reads, from the same quantities
        rankdf = pd.DataFrame({"meanrank": analysis.mean_ranks})
        fields = dict.fromkeys(RankResult._fields)
        fields.update(
            rankdf=rankdf, pvalue=analysis.pvalue, cd=analysis.cd, omnibus="friedman", posthoc="nemenyi",
            alpha=analysis.alpha, num_samples=analysis.n_datasets,
        )  # fmt: skip
        result = RankResult(**fields)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ax = autorank.plot_stats(result, allow_insignificant=True, width=width)
    figure = ax.figure
    plt.close(figure)  # detach from pyplot's registry; the Figure still renders (savefig)
    return figure
