"""Statistics of a results table: mean ± 95% t-interval over seeds, paired tests against the best config.

For each configuration (one ``config_id``: same data, fusion, head, training config, semantics):

- ``runs`` rows in the table, of which ``failed`` and ``diverged`` are counted, and the **ok** runs;
  ``nan_runs`` ok runs whose metric is NaN (e.g. an empty split). ``n``, ``mean``, ``std`` and ``ci``
  are all computed over the same values: the finite metric values of the ok runs, one per seed:

      mean ± t_{0.975, n-1} · s / √n             (no interval with n = 1)

- ``planned`` seeds: the ``seeds`` argument, else every seed that occurs in the dataset's rows;
  ``complete`` is True when every planned seed has an ok run with a finite metric. A failed or
  diverged seed leaves the mean (it has no test metric) but not the table: an **incomplete**
  configuration is ranked after every complete one of its dataset and is never the reference,
  because its mean is over the seeds that survived, which flatters unstable methods. Show the
  ``failed``/``diverged`` counts next to the mean.

Within each dataset the first configuration in that order (the complete one with the highest mean,
else the incomplete one with the highest mean) is the reference. Every other one is compared with it
on the seeds both have (finite values):

- **paired t-test over seeds** (``scipy.stats.ttest_rel``) on the metric — the deciding test when
  there are ≥ 2 shared seeds, because the spread between seeds is the variance a reader cares about.
  When the differences are (numerically) constant, the t statistic is undefined (zero variance):
  ``p = NaN`` — never ``p = 0`` (scipy returns 0, or ~1e-16 from rounding, for two seeds that differ
  by the same amount, which would put a star on two numbers). All-zero differences give ``p = 1``;
- **McNemar's test** on the test predictions (exact binomial test on the discordant rows ``b``/``c``;
  χ² with continuity correction when ``b + c > 50``; as ``statsmodels``' ``mcnemar``). Over several
  seeds each *test row* counts once: a row's correctness is averaged over the shared seeds for each
  configuration, ``b`` = rows where the reference's average is higher, ``c`` = rows where it is lower
  (the sign test on per-row differences, which is McNemar's test for one seed). Concatenating the
  seeds instead would count every row once per seed as if they were independent rows, making p too
  small by about the number of seeds; a Cochran–Mantel–Haenszel test over seeds has the same flaw
  (its strata are the same rows). It decides when only one seed is shared, or when the t-test is
  undefined.

The deciding p-values of one leaderboard are Holm-adjusted (family = the comparisons with the
reference in that leaderboard, one per other configuration with a result; as
``statsmodels.stats.multitest.multipletests(method="holm")``) before comparing with α = 0.05, so adding
configurations does not inflate false marks. Both tests are two-sided; ``significant`` (the leaderboard's
``*``, "significantly worse than the best") also checks the sign: the configuration's mean over the
shared seeds is worse than the reference's in the metric's direction. A significant difference the
other way (an incomplete configuration ranked below the reference with a better mean) is
``better_significant`` instead, never a star. :func:`pairwise` is the other family: every pair of the
leaderboard, Holm-adjusted over all of them (two-sided, "differs"); the report shows both, named.

A leaderboard is one dataset at one **data version** (``data_fingerprint``): configurations of two
versions of a dataset were tested on different test sets and are ranked and tested apart, never
against each other. A configuration without a single finished run (every seed failed or diverged)
has no rank (``rank`` NA) and is never the reference ("best").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = ["BOARD", "GROUP", "holm", "mcnemar", "paired_t_test", "pairwise", "summarize", "t_interval"]

GROUP = ("dataset", "fusion", "head", "config_id")  # config_id: the run identity without the seed
BOARD = ("dataset", "data_fingerprint")  # one leaderboard: a dataset at one data version
ALPHA = 0.05


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """(mean, half-width) of the two-sided t confidence interval over the finite values; half-width NaN
    for fewer than 2 values (as ``scipy.stats.t.interval(confidence, n-1, mean, sem)``)."""
    arr = _finite(values)
    if len(arr) == 0:
        return float("nan"), float("nan")
    mean = float(arr.mean())
    if len(arr) < 2:
        return mean, float("nan")
    sem = float(arr.std(ddof=1)) / math.sqrt(len(arr))
    return mean, float(sps.t.ppf(0.5 + confidence / 2, len(arr) - 1) * sem)


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    return arr[np.isfinite(arr)]


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the paired t-test (``scipy.stats.ttest_rel``).

    NaN for fewer than 2 pairs and when the differences are constant but not zero (zero variance: the
    test is undefined, not infinitely significant); 1.0 when every difference is zero.
    """
    a_arr, b_arr = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a_arr) != len(b_arr):
        raise ValueError("paired samples must have the same length")
    if len(a_arr) < 2:
        return float("nan")
    diff = a_arr - b_arr
    scale = max(float(np.max(np.abs(a_arr))), float(np.max(np.abs(b_arr))), 1e-300)
    if np.allclose(diff, 0.0, rtol=0.0, atol=1e-12 * scale):
        return 1.0
    if np.allclose(diff, diff[0], rtol=1e-9, atol=1e-12 * scale):
        return float("nan")
    return float(sps.ttest_rel(a_arr, b_arr).pvalue)


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Two-sided McNemar p-value for paired correctness on the same test rows.

    ``correct_a``/``correct_b``: ``(N,)`` bool for one seed, or ``(S, N)`` for S seeds on the same N
    rows (each row's correctness is then averaged over the seeds; see the module docstring).
    ``b`` = rows where A is (more often) correct, ``c`` = the reverse; exact binomial test when
    ``b + c <= 50``, else χ² with continuity correction; 1.0 when ``b + c = 0``.
    """
    a = np.asarray(correct_a, dtype=np.float64)
    b_ = np.asarray(correct_b, dtype=np.float64)
    if a.shape != b_.shape:
        raise ValueError(f"McNemar needs predictions on the same rows: {a.shape} vs {b_.shape}")
    if a.ndim == 2:
        a, b_ = a.mean(axis=0), b_.mean(axis=0)
    elif a.ndim != 1:
        raise ValueError(f"McNemar takes (N,) or (seeds, N) correctness arrays, got shape {a.shape}")
    b = int(np.sum(a > b_))
    c = int(np.sum(a < b_))
    if b + c == 0:
        return 1.0
    if b + c <= 50:
        return float(sps.binomtest(min(b, c), b + c, 0.5).pvalue)
    statistic = (abs(b - c) - 1) ** 2 / (b + c)
    return float(sps.chi2.sf(statistic, 1))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (NaN stays NaN and does not count)."""
    values = list(pvalues)
    valid = [(p, i) for i, p in enumerate(values) if not math.isnan(p)]
    m = len(valid)
    adjusted = [float("nan")] * len(values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(valid)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


PredictionLoader = Callable[[str], "tuple[np.ndarray, np.ndarray] | None"]


def summarize(
    runs: pd.DataFrame,
    metric: str = "test_accuracy",
    predictions: PredictionLoader | None = None,
    seeds: Sequence[int] | None = None,
    direction: str = "max",
) -> pd.DataFrame:
    """One row per configuration, per dataset complete configurations first, each by mean ``metric``,
    best first: descending for ``direction="max"``, ascending for ``"min"`` (the metric's own
    direction, e.g. a loss or a latency).

    Columns: the :data:`GROUP` columns, ``n`` (ok runs with a finite metric: what ``mean``, ``std`` and
    ``ci`` are over), ``runs`` (all rows), ``failed``, ``diverged``, ``nan_runs`` (ok runs whose metric
    is NaN), ``planned`` (number of planned seeds), ``complete`` (every planned seed has an ok, finite
    run), ``mean``, ``std``, ``ci`` (half-width), ``params``, ``train_time`` (mean s), ``rank``,
    ``is_best``, ``p_ttest``, ``p_mcnemar`` (raw), ``p_adjusted`` (Holm over the comparisons with the
    best, of the deciding test), ``test`` (which test decided), ``significant`` (worse than the best at
    α = 0.05 after adjustment, sign checked), ``better_significant`` (differs at α = 0.05 but its mean
    over the shared seeds is better than the best's: an incomplete configuration ranked below it),
    ``data_fingerprint`` (the data version; each version of a dataset is its own leaderboard).

    ``predictions(run_id)`` returns a run's ``(test predictions, test labels)`` or ``None`` (for
    McNemar); without it only the t-test is used. ``seeds``: the planned seeds (default: every seed
    that occurs in the dataset's rows).
    """
    columns = [
        *GROUP,
        "data_fingerprint",
        "n",
        "runs",
        "failed",
        "diverged",
        "nan_runs",
        "planned",
        "complete",
        "mean",
        "std",
        "ci",
        "params",
        "train_time",
        "rank",
        "is_best",
        "p_ttest",
        "p_mcnemar",
        "p_adjusted",
        "test",
        "significant",
        "better_significant",
    ]
    if direction not in ("max", "min"):
        raise ValueError(f"direction must be max or min, got {direction!r}")
    if runs is None or len(runs) == 0:
        return pd.DataFrame(columns=columns)
    if metric not in runs.columns:
        available = sorted(c for c in runs.columns if c.startswith(("test_", "val_")))
        raise KeyError(f"metric '{metric}' is not in the results; available: {', '.join(available)}")
    table = _configs(runs, metric, seeds)
    out = []
    for _, part in table.groupby(list(BOARD), sort=False, dropna=False):
        part = _ranked(part, direction)
        scored = part["n"] > 0  # a configuration whose every run failed has no rank and is never best
        part["rank"] = pd.Series(np.cumsum(scored), index=part.index, dtype="Int64").where(scored)
        part["is_best"] = (part.index == 0) & scored
        best = part.iloc[0]
        p_t, p_m, deciding, tests, worse = [], [], [], [], []
        for _, row in part.iterrows():
            if row["is_best"] or row["n"] == 0 or not best["is_best"]:
                p_t.append(float("nan"))
                p_m.append(float("nan"))
                deciding.append(float("nan"))
                tests.append("")
                worse.append(False)
                continue
            pt, pm, p, test, shared = _compare(best, row, predictions)
            p_t.append(pt)
            p_m.append(pm)
            deciding.append(p)
            tests.append(test)
            gap = np.mean([best["_seeds"][s] - row["_seeds"][s] for s in shared]) if shared else 0.0
            worse.append(bool(gap > 0 if direction == "max" else gap < 0))
        part["p_ttest"], part["p_mcnemar"], part["test"] = p_t, p_m, tests
        part["p_adjusted"] = holm(deciding)
        differs = [bool(p < ALPHA) if not math.isnan(p) else False for p in part["p_adjusted"]]
        part["significant"] = [d and w for d, w in zip(differs, worse, strict=True)]
        part["better_significant"] = [d and not w for d, w in zip(differs, worse, strict=True)]
        out.append(part)
    result = pd.concat(out, ignore_index=True).drop(columns=["_seeds", "_ids"])
    return result[columns]


def _configs(runs: pd.DataFrame, metric: str, seeds: Sequence[int] | None) -> pd.DataFrame:
    """One row per configuration: counts, completeness, mean/std/CI of ``metric`` over the finite ok
    runs, ``_seeds``/``_ids`` (seed -> value / run id)."""
    if "data_fingerprint" not in runs.columns:
        runs = runs.assign(data_fingerprint="")
    planned_by_board = {
        board: _planned(part, seeds) for board, part in runs.groupby(list(BOARD), sort=False, dropna=False)
    }
    rows = []
    for key, group in runs.groupby(list(GROUP), sort=False, dropna=False):
        ok = group[group["status"] == "ok"]
        values = ok[metric].astype(float).to_numpy()
        finite = np.isfinite(values)
        good = ok[finite]
        values = values[finite]
        mean, half = t_interval(values)
        fingerprint = group["data_fingerprint"].iloc[0]  # one per config_id (part of its identity)
        planned = planned_by_board[(key[0], fingerprint)]
        rows.append(
            {
                **dict(zip(GROUP, key, strict=True)),
                "data_fingerprint": fingerprint,
                "n": len(values),
                "runs": len(group),
                "failed": int((group["status"] == "failed").sum()),
                "diverged": int((group["status"] == "diverged").sum()),
                "nan_runs": int((~finite).sum()),
                "planned": len(planned),
                "complete": planned <= set(_replicates(good)),
                "mean": mean,
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else float("nan"),
                "ci": half,
                "params": int(ok["params"].max()) if len(ok) else int(group["params"].max() or 0),
                "train_time": float(ok["train_time"].mean()) if len(ok) else float("nan"),
                "_seeds": dict(zip(_replicates(good), values, strict=True)),
                "_ids": dict(zip(_replicates(good), good["run_id"].astype(str), strict=True)),
            }
        )
    return pd.DataFrame(rows)


def _replicates(frame: pd.DataFrame) -> list[tuple[int, int]]:
    """The replicate of each run, what paired tests pair on: (seed, split seed), the split seed of
    the re-drawn train/validation split (``bench --split-seeds``), −1 for the loader's split."""
    seeds = frame["seed"].astype(int).tolist()
    if "split_seed" not in frame.columns:
        return [(seed, -1) for seed in seeds]
    splits = pd.to_numeric(frame["split_seed"], errors="coerce").fillna(-1).astype(int).tolist()
    return list(zip(seeds, splits, strict=True))


def _planned(part: pd.DataFrame, seeds: Sequence[int] | None) -> set[tuple[int, int]]:
    """The replicates a board plans: ``seeds`` × the split seeds that occur, else those that occur."""
    if seeds is None:
        return set(_replicates(part))
    splits = {split for _, split in _replicates(part)} or {-1}
    return {(int(s), split) for s in seeds for split in splits}


def _ranked(part: pd.DataFrame, direction: str) -> pd.DataFrame:
    """One dataset's configurations in leaderboard order: complete ones first, each by mean, best first."""
    return part.sort_values(
        ["complete", "mean"],
        ascending=[False, direction == "min"],
        na_position="last",
        kind="stable",
    ).reset_index(drop=True)


def _compare(
    a: pd.Series, b: pd.Series, predictions: PredictionLoader | None
) -> tuple[float, float, float, str, list[Any]]:
    """(p paired t, p McNemar, p of the deciding test, its name, the shared seeds) of configurations
    ``a`` vs ``b``: the paired t-test decides with >= 2 shared seeds when it is defined, else McNemar."""
    shared = sorted(set(a["_seeds"]) & set(b["_seeds"]))
    pt = paired_t_test([a["_seeds"][s] for s in shared], [b["_seeds"][s] for s in shared])
    pm = _pooled_mcnemar(shared, a["_ids"], b["_ids"], predictions)
    if len(shared) >= 2 and not math.isnan(pt):
        return pt, pm, pt, "paired t", shared
    if not math.isnan(pm):
        return pt, pm, pm, "McNemar", shared
    return pt, pm, float("nan"), "", shared


def pairwise(
    runs: pd.DataFrame,
    metric: str = "test_accuracy",
    predictions: PredictionLoader | None = None,
    seeds: Sequence[int] | None = None,
    direction: str = "max",
) -> pd.DataFrame:
    """Every pair of configurations of each dataset, with the tests :func:`summarize` uses.

    One row per unordered pair ``(a, b)``, ``a`` before ``b`` in leaderboard order (:func:`summarize`'s:
    complete first, then by mean): the :data:`GROUP` columns of both (``fusion_a``, ``config_id_b`` ...),
    ``mean_a``, ``mean_b``, ``shared`` (seeds both ran), ``p_ttest``, ``p_mcnemar``, ``test`` (which one
    decides, as in :func:`summarize`), ``p`` (its p-value), ``p_adjusted`` (Holm over *all* pairs of
    the leaderboard: one dataset at one data version) and ``significant`` (``p_adjusted < 0.05``: the
    two differ, two-sided). The family is larger than the leaderboard's (comparisons with the reference
    only), so a pair with the reference marked here, the other one worse, is always marked there, not
    conversely.
    """
    columns = [
        "dataset",
        "data_fingerprint",
        *(f"{c}_{s}" for s in "ab" for c in GROUP[1:]),
        "mean_a",
        "mean_b",
        "shared",
        "p_ttest",
        "p_mcnemar",
        "test",
        "p",
        "p_adjusted",
        "significant",
    ]
    if runs is None or len(runs) == 0:
        return pd.DataFrame(columns=columns)
    out = []
    for (dataset, fingerprint), part in _configs(runs, metric, seeds).groupby(
        list(BOARD), sort=False, dropna=False
    ):
        part = _ranked(part, direction)
        part = part[part["n"] > 0].reset_index(drop=True)
        rows = []
        for i in range(len(part)):
            for j in range(i + 1, len(part)):
                a, b = part.iloc[i], part.iloc[j]
                pt, pm, p, test, shared = _compare(a, b, predictions)
                row = {"dataset": dataset, "data_fingerprint": fingerprint, "mean_a": a["mean"]}
                row.update({"mean_b": b["mean"], "shared": len(shared)})
                row.update({f"{c}_a": a[c] for c in GROUP[1:]})
                row.update({f"{c}_b": b[c] for c in GROUP[1:]})
                row.update({"p_ttest": pt, "p_mcnemar": pm, "test": test, "p": p})
                rows.append(row)
        for row, p_adj in zip(rows, holm([r["p"] for r in rows]), strict=True):
            row["p_adjusted"] = p_adj
            row["significant"] = bool(p_adj < ALPHA) if not math.isnan(p_adj) else False
        out.extend(rows)
    return pd.DataFrame(out, columns=columns)


def _pooled_mcnemar(
    seeds: list[Any],
    best_ids: dict[Any, str],
    other_ids: dict[Any, str],
    predictions: PredictionLoader | None,
) -> float:
    """McNemar over the shared seeds, each test row counted once (see :func:`mcnemar`)."""
    if predictions is None or not seeds:
        return float("nan")
    best_correct, other_correct = [], []
    labels = None
    for seed in seeds:
        a, b = predictions(best_ids[seed]), predictions(other_ids[seed])
        if a is None or b is None or a[0].shape != b[0].shape or not np.array_equal(a[1], b[1]):
            return float("nan")  # not the same test rows: McNemar does not apply
        if labels is not None and not np.array_equal(labels, a[1]):
            return float("nan")  # seeds evaluated on different test rows
        labels = a[1]
        best_correct.append(a[0] == a[1])
        other_correct.append(b[0] == b[1])
    return mcnemar(np.stack(best_correct), np.stack(other_correct))
