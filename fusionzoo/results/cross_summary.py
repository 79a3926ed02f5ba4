"""The cross-dataset answer of a suite in one call: :func:`cross_dataset_summary`.

    summary = cross_dataset_summary(runs_frame, baseline="concat_mlp", chance={"synth": 0.1, ...})
    summary.table          # one row per method (below), best IQM first: terminal / md / latex / csv
    summary.improvement    # P(row > column) point estimates, methods × methods
    summary.equivalences   # every equivalence test, long form, with its sentence
    summary.ranks          # RankAnalysis: average ranks, Friedman p, Nemenyi CD (cd_figure draws it)
    summary.lines()        # what the CIs cover, the normalisation, the tests' sentences, the notes

``table`` columns: ``method``, ``datasets``, ``runs`` (finished), ``failed`` (excluded), ``mean``,
``mean_low``, ``mean_high``, ``iqm``, ``iqm_low``, ``iqm_high`` (normalised scores, CI at
``confidence``), ``mean_rank`` (1 = best), ``rank_differs_from_best`` (Nemenyi: average ranks further
apart than the CD after a significant Friedman test), ``p_vs_baseline`` / ``_low`` / ``_high``
(P(method > baseline) with its CI), and per reference ``best`` (the highest IQM) and ``baseline``:
``p_equiv_<ref>``, ``p_above_<ref>`` (method better by more than the ROPE), ``p_below_<ref>`` and
``verdict_<ref>`` (``equivalent`` | ``better`` | ``worse`` | ``inconclusive`` at P ≥ 1 − alpha; empty
for the reference itself). Definitions: :mod:`fusionzoo.results.cross_dataset`,
:mod:`fusionzoo.results.cross_estimates` and :mod:`fusionzoo.results.cross_ranks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fusionzoo.results.cross_dataset import CrossDatasetError, Runs, prepare_runs
from fusionzoo.results.cross_estimates import (
    NSAMPLES,
    REPS,
    Equivalence,
    equivalence,
    improvement_matrix,
    interval_estimates,
    probability_of_improvement,
)
from fusionzoo.results.cross_ranks import RankAnalysis, rank_analysis

__all__ = ["COLUMNS", "CrossDatasetSummary", "cross_dataset_summary"]

COLUMNS = (
    "method", "datasets", "runs", "failed", "mean", "mean_low", "mean_high", "iqm", "iqm_low", "iqm_high",
    "mean_rank", "rank_differs_from_best", "p_vs_baseline", "p_vs_baseline_low", "p_vs_baseline_high",
    *(f"{c}_{role}" for role in ("best", "baseline") for c in ("p_equiv", "p_above", "p_below", "verdict")),
)  # fmt: skip


@dataclass(frozen=True)
class CrossDatasetSummary:
    """The result of :func:`cross_dataset_summary` (see the module docstring)."""

    table: pd.DataFrame
    improvement: pd.DataFrame
    equivalences: pd.DataFrame
    ranks: RankAnalysis | None
    runs: Runs
    best: str
    baseline: str | None
    rope: float
    confidence: float
    notes: tuple[str, ...]

    @property
    def coverage(self) -> str:
        """What the intervals cover, for the caption of every table that shows them."""
        sources = " × ".join(self.runs.variance_sources)
        return (
            f"{self.confidence:.0%} CIs: stratified bootstrap over runs ({sources}) within each of "
            f"{len(self.runs.datasets)} datasets; they do not cover the choice of datasets"
        )

    def lines(self) -> list[str]:
        """Sentences for a reader: coverage, normalisation, the rank test, equivalences, notes."""
        out = [self.coverage, f"scores normalised: {self.runs.normalisation}"]
        if self.ranks is not None:
            out.append(f"ranks: {self.ranks.note} ({self.ranks.source})")
        out.extend(self.equivalences["text"].tolist() if len(self.equivalences) else [])
        out.extend(self.notes)
        return out


def cross_dataset_summary(
    frame: pd.DataFrame,
    *,
    baseline: str | None = None,
    normalise: str = "chance",
    chance: Mapping[str, float] | None = None,
    rope: float = 0.01,
    alpha: float = 0.05,
    confidence: float = 0.95,
    reps: int = REPS,
    nsamples: int = NSAMPLES,
    seed: int = 0,
) -> CrossDatasetSummary:
    """Every cross-dataset statistic of the tidy runs ``frame`` (``dataset, method, seed, score`` [+
    ``split_seed``, ``status``, ``chance``]; :func:`~fusionzoo.results.cross_dataset.prepare_runs`).

    ``baseline``: the simplest method, compared with each (P(method > baseline), equivalence);
    ``normalise``/``chance``: the per-dataset normalisation; ``rope``: the equivalence margin in raw
    score units (0.01 = 1 accuracy point); ``alpha``: the tests' level; ``reps``: bootstrap
    resamples; ``nsamples``: posterior samples; ``seed``: fixes every random draw (same input, same
    numbers).
    """
    runs = prepare_runs(frame, normalise=normalise, chance=chance, baseline=baseline)
    if baseline is not None and baseline not in runs.methods:
        raise CrossDatasetError(
            f"baseline {baseline!r} is not among the compared methods ({', '.join(runs.methods)})"
        )
    notes = list(runs.notes)
    table = interval_estimates(runs, reps=reps, confidence=confidence, seed=seed)
    table = table.sort_values(["iqm", "method"], ascending=[False, True], kind="stable").reset_index(
        drop=True
    )
    table["failed"] = [int(runs.failed.get(m, 0)) for m in table["method"]]
    best = str(table["method"].iloc[0])
    ranks = None
    if len(runs.methods) >= 2:
        ranks = rank_analysis(runs.dataset_means("normalised"), alpha=alpha)
        table["mean_rank"] = table["method"].map(ranks.mean_ranks)
        table["rank_differs_from_best"] = table["method"].map(ranks.differs_from(best))
    else:
        notes.append("one method: nothing to compare")
        table["mean_rank"], table["rank_differs_from_best"] = 1.0, False
    _baseline_improvement(table, runs, baseline, reps=reps, confidence=confidence, seed=seed)
    equivalences = _equivalences(
        table, runs, best, baseline, notes, rope=rope, alpha=alpha, nsamples=nsamples, seed=seed
    )
    return CrossDatasetSummary(
        table=table[list(COLUMNS)],
        improvement=improvement_matrix(runs),
        equivalences=equivalences,
        ranks=ranks,
        runs=runs,
        best=best,
        baseline=baseline,
        rope=rope,
        confidence=confidence,
        notes=tuple(notes),
    )


def _baseline_improvement(
    table: pd.DataFrame, runs: Runs, baseline: str | None, *, reps: int, confidence: float, seed: int
) -> None:
    cols = ["p_vs_baseline", "p_vs_baseline_low", "p_vs_baseline_high"]
    table[cols] = np.nan
    if baseline is None:
        return
    for i, method in enumerate(table["method"]):
        if method != baseline:
            table.loc[i, cols] = probability_of_improvement(
                runs, method, baseline, reps=reps, confidence=confidence, seed=seed
            )


def _equivalences(
    table: pd.DataFrame,
    runs: Runs,
    best: str,
    baseline: str | None,
    notes: list[str],
    **options: float,
) -> pd.DataFrame:
    """Fill the ``p_equiv_/p_above_/p_below_/verdict_`` columns of ``table`` against the best and the
    baseline; return every test in long form (a baseline that is the best is tested once)."""
    tests = []
    for role, reference in (("best", best), ("baseline", baseline)):
        cols = [f"p_equiv_{role}", f"p_above_{role}", f"p_below_{role}", f"verdict_{role}"]
        table[cols] = [np.nan, np.nan, np.nan, ""]
        if reference is None or len(runs.methods) < 2:
            continue
        if len(runs.datasets) < 2:
            notes.append(f"one dataset: no equivalence test against the {role}")
            continue
        if role == "baseline" and reference == best:
            table[cols] = table[["p_equiv_best", "p_above_best", "p_below_best", "verdict_best"]].to_numpy()
            continue
        for i, method in enumerate(table["method"]):
            if method != reference:
                test = equivalence(runs, method, reference, **options)
                table.loc[i, cols] = [test.p_equivalent, test.p_a_better, test.p_b_better, test.verdict]
                tests.append({"method": method, "reference": reference, "role": role, **_fields(test)})
    columns = ["method", "reference", "role", "p_equivalent", "p_method_better", "p_reference_better",
               "verdict", "rope", "text"]  # fmt: skip
    return pd.DataFrame(tests, columns=columns)


def _fields(test: Equivalence) -> dict[str, object]:
    return {
        "p_equivalent": test.p_equivalent,
        "p_method_better": test.p_a_better,
        "p_reference_better": test.p_b_better,
        "verdict": test.verdict,
        "rope": test.rope,
        "text": test.text,
    }
