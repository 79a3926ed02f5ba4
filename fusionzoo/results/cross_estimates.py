"""Cross-dataset statistics of a suite (library layer), part 2: IQM and mean with stratified bootstrap
CIs, the probability of improvement P(A > B), practical equivalence; over the validated
:class:`~fusionzoo.results.cross_dataset.Runs` (normalised scores, complete blocks).

Estimates (rliable's definitions, Agarwal et al., NeurIPS 2021), over the (runs × datasets) scores of a
method, runs = seeds (× split seeds when present):

- **IQM** = ``rliable.metrics.aggregate_iqm``: the 25 % trimmed mean of all runs of all datasets;
  **mean** = ``rliable.metrics.aggregate_mean``: the mean over datasets of the per-dataset means;
- **P(A > B)** = ``rliable.metrics.probability_of_improvement``: the mean over datasets of
  P(X > Y) + ½ P(X = Y) for a random run X of A and Y of B (the Mann–Whitney U / (n·m));
- **CIs**: percentile intervals of the *stratified bootstrap* (rliable's ``StratifiedBootstrap``,
  ``task_bootstrap=False``): the runs of each dataset are resampled with replacement, independently
  per dataset (and per method for P(A > B)); a dataset with one run stays fixed (NaN interval when
  every dataset has one run). They cover the seed-to-seed variation (and split re-draws when
  ``split_seed`` varies), not the choice of datasets; with 2–3 runs per dataset they are narrow and
  undercover. Computed with ``scipy.stats.bootstrap`` (one sample per dataset; the vectorised
  statistics equal rliable's functions, checked in the tests): ``rliable.library`` cannot be imported
  with the pinned pandas 3 (rliable requires ``arch`` < 8, arch 7.2 fails to import under pandas 3,
  and arch 8 rejects the ``random_state`` argument rliable passes).

Practical equivalence (:func:`equivalence`): baycomp's Bayesian signed-rank test (Benavoli et al.,
ICML 2014) on the per-dataset mean *raw* scores, with a region of practical equivalence ±``rope`` in
the score's units (0.01 = 1 point of accuracy): "A ≈ B (ROPE ±1 pt): P(equivalent) = 0.83".
Its Dirichlet prior puts weight ½ on a zero difference, which dominates with 2–3 datasets. The
hierarchical test (per-seed scores) needs Stan (pystan), which is not installed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import baycomp
import numpy as np
import pandas as pd
from rliable import metrics as rly_metrics
from scipy import stats as sps

from fusionzoo.results.cross_dataset import CrossDatasetError, Runs

__all__ = [
    "NSAMPLES",
    "REPS",
    "Equivalence",
    "equivalence",
    "improvement_matrix",
    "interval_estimates",
    "probability_of_improvement",
]

REPS = 10_000  # bootstrap resamples
NSAMPLES = 10_000  # posterior samples of the signed-rank test (Monte-Carlo error of a P: <= 0.005)


def _stratified_interval(
    samples: list[np.ndarray],
    statistic: Callable[[list[np.ndarray]], np.ndarray],
    *,
    reps: int,
    confidence: float,
    seed: int,
) -> np.ndarray:
    """(2, m) percentile CI of ``statistic(samples)`` (m values) under the stratified bootstrap: every
    sample resampled with replacement on its own; one-run samples stay fixed. NaN when none varies."""
    varying = [i for i, s in enumerate(samples) if len(s) >= 2]
    outputs = len(np.atleast_1d(statistic(samples)))
    if not varying:
        return np.full((2, outputs), np.nan)

    def vectorised(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        batch = resampled[0].shape[:-1]
        full = [np.broadcast_to(s, (*batch, len(s))) for s in samples]
        for i, values in zip(varying, resampled, strict=True):
            full[i] = values
        return statistic(full)

    result = sps.bootstrap(
        tuple(samples[i] for i in varying),
        vectorised,
        n_resamples=reps,
        vectorized=True,
        method="percentile",
        confidence_level=confidence,
        rng=np.random.default_rng(seed),
    )
    return np.vstack(
        [np.atleast_1d(result.confidence_interval.low), np.atleast_1d(result.confidence_interval.high)]
    )


def _iqm_and_mean(tasks: list[np.ndarray]) -> np.ndarray:
    """[IQM, mean] over the last axis of each task's runs (rliable's definitions, vectorised)."""
    pooled = np.concatenate(tasks, axis=-1)
    iqm = sps.trim_mean(pooled, 0.25, axis=-1)
    mean = np.mean(np.stack([t.mean(axis=-1) for t in tasks], axis=-1), axis=-1)
    return np.stack([iqm, mean])


def _improvement(x_tasks: list[np.ndarray], y_tasks: list[np.ndarray]) -> np.ndarray:
    """Mean over tasks of P(X > Y) + ½ P(X = Y) (rliable's probability of improvement, vectorised)."""
    per_task = []
    for x, y in zip(x_tasks, y_tasks, strict=True):
        gt = (x[..., :, None] > y[..., None, :]).mean(axis=(-2, -1))
        eq = (x[..., :, None] == y[..., None, :]).mean(axis=(-2, -1))
        per_task.append(gt + 0.5 * eq)
    return np.mean(np.stack(per_task, axis=-1), axis=-1)


def interval_estimates(
    runs: Runs, *, reps: int = REPS, confidence: float = 0.95, seed: int = 0, column: str = "normalised"
) -> pd.DataFrame:
    """One row per method: ``iqm``, ``iqm_low``, ``iqm_high``, ``mean``, ``mean_low``, ``mean_high``
    (of ``column``), ``runs`` (finished) and ``datasets``. Point estimates are rliable's
    ``aggregate_iqm``/``aggregate_mean``; CIs the stratified bootstrap's (module docstring)."""
    rows = []
    for method in runs.methods:
        tasks = runs.tasks(method, column)
        iqm = float(rly_metrics.aggregate_iqm(np.concatenate(tasks)))
        mean = float(np.mean([rly_metrics.aggregate_mean(t[:, None]) for t in tasks]))
        ci = _stratified_interval(tasks, _iqm_and_mean, reps=reps, confidence=confidence, seed=seed)
        rows.append(
            {"method": method, "iqm": iqm, "iqm_low": ci[0, 0], "iqm_high": ci[1, 0], "mean": mean,
             "mean_low": ci[0, 1], "mean_high": ci[1, 1], "runs": int(sum(len(t) for t in tasks)),
             "datasets": len(tasks)}
        )  # fmt: skip
    return pd.DataFrame(rows)


def probability_of_improvement(
    runs: Runs, a: str, b: str, *, reps: int = REPS, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(P(a > b), low, high): rliable's ``probability_of_improvement`` averaged over the datasets,
    with the percentile CI of the stratified bootstrap resampling each method's runs independently."""
    _check_methods(runs, a, b)
    x, y = runs.tasks(a), runs.tasks(b)
    point = _rliable_improvement(x, y)
    k = len(x)
    ci = _stratified_interval(
        [*x, *y], lambda t: _improvement(t[:k], t[k:]), reps=reps, confidence=confidence, seed=seed
    )
    return point, float(ci[0, 0]), float(ci[1, 0])


def improvement_matrix(runs: Runs) -> pd.DataFrame:
    """methods × methods point estimates of P(row > column) (diagonal NaN); P(b > a) = 1 − P(a > b)."""
    out = pd.DataFrame(np.nan, index=list(runs.methods), columns=list(runs.methods))
    for a in runs.methods:
        for b in runs.methods:
            if a != b:
                out.loc[a, b] = _rliable_improvement(runs.tasks(a), runs.tasks(b))
    return out


def _rliable_improvement(x_tasks: list[np.ndarray], y_tasks: list[np.ndarray]) -> float:
    """rliable's P(X > Y) per dataset (each may have its own number of runs), averaged over datasets;
    equal to ``rliable.metrics.probability_of_improvement`` of the (runs × datasets) matrices."""
    per_task = [
        rly_metrics.probability_of_improvement(x[:, None], y[:, None])
        for x, y in zip(x_tasks, y_tasks, strict=True)
    ]
    return float(np.mean(per_task))


def _check_methods(runs: Runs, *methods: str) -> None:
    unknown = [m for m in methods if m not in runs.methods]
    if unknown:
        raise CrossDatasetError(
            f"{', '.join(unknown)} not among the compared methods ({', '.join(runs.methods)})"
        )


# ------------------------------------------------------------------------------ practical equivalence
@dataclass(frozen=True)
class Equivalence:
    """baycomp's signed-rank posterior of ``a`` vs ``b``: P(a better), P(equivalent), P(b better)
    (each difference beyond / within ±``rope``), the ``verdict`` at ``1 − alpha`` (``equivalent``,
    ``better`` = a better, ``worse`` = b better, else ``inconclusive``) and the sentence."""

    a: str
    b: str
    rope: float
    p_a_better: float
    p_equivalent: float
    p_b_better: float
    verdict: str
    datasets: int
    rope_label: str = field(default="")

    @property
    def text(self) -> str:
        """ "A ≈ B (ROPE ±1 pt): P(equivalent) = 0.83, P(A better) = 0.10, P(B better) = 0.07 ..." """
        relation = {"equivalent": "≈", "better": ">", "worse": "<"}.get(self.verdict)
        head = f"{self.a} {relation} {self.b}" if relation else f"{self.a} vs {self.b}, {self.verdict}"
        return (
            f"{head} ({self.rope_label}): P(equivalent) = {self.p_equivalent:.2f}, "
            f"P({self.a} better) = {self.p_a_better:.2f}, P({self.b} better) = {self.p_b_better:.2f}"
            f" over {self.datasets} datasets"
        )


def equivalence(
    runs: Runs,
    a: str,
    b: str,
    *,
    rope: float = 0.01,
    alpha: float = 0.05,
    nsamples: int = NSAMPLES,
    seed: int = 0,
    column: str = "score",
) -> Equivalence:
    """Bayesian signed-rank test (``baycomp.two_on_multiple``) of ``a`` vs ``b`` on their per-dataset
    mean ``column`` (raw scores by default; ``rope`` in its units). Needs >= 2 datasets."""
    _check_methods(runs, a, b)
    if rope < 0:
        raise CrossDatasetError(f"rope must be >= 0, got {rope}")
    if len(runs.datasets) < 2:
        raise CrossDatasetError("the equivalence test compares datasets: it needs at least 2")
    means = runs.dataset_means(column)
    x, y = means[a].to_numpy(dtype=np.float64), means[b].to_numpy(dtype=np.float64)
    # (P(x − y > rope), P(|x − y| <= rope), P(y − x > rope)); baycomp returns all three also for rope 0
    p_a, p_eq, p_b = (
        float(p) for p in baycomp.two_on_multiple(x, y, rope=rope, nsamples=nsamples, random_state=seed)
    )
    threshold = 1.0 - alpha
    verdict = (
        "equivalent" if p_eq >= threshold else "better" if p_a >= threshold else "worse" if p_b >= threshold
        else "inconclusive"
    )  # fmt: skip
    raw = runs.frame[column]
    label = f"ROPE ±{rope * 100:g} pt" if column == "score" and raw.between(0, 1).all() else f"ROPE ±{rope:g}"
    return Equivalence(a, b, rope, p_a, p_eq, p_b, verdict, len(runs.datasets), label)
