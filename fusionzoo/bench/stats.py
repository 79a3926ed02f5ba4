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

The deciding p-values of one leaderboard are Holm-adjusted (family = all comparisons against the
reference in that dataset; as ``statsmodels.stats.multitest.multipletests(method="holm")``) before
comparing with α = 0.05, so adding configurations does not inflate false marks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = ["GROUP", "holm", "mcnemar", "paired_t_test", "summarize", "t_interval"]

GROUP = ("dataset", "fusion", "head", "config_id")  # config_id: the run identity without the seed
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
    ``is_best``, ``p_ttest``, ``p_mcnemar`` (raw), ``p_adjusted`` (Holm, of the deciding test),
    ``test`` (which test decided), ``significant`` (worse than the best at α = 0.05 after adjustment).

    ``predictions(run_id)`` returns a run's ``(test predictions, test labels)`` or ``None`` (for
    McNemar); without it only the t-test is used. ``seeds``: the planned seeds (default: every seed
    that occurs in the dataset's rows).
    """
    columns = [
        *GROUP,
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
    ]
    if direction not in ("max", "min"):
        raise ValueError(f"direction must be max or min, got {direction!r}")
    if runs is None or len(runs) == 0:
        return pd.DataFrame(columns=columns)
    if metric not in runs.columns:
        available = sorted(c for c in runs.columns if c.startswith(("test_", "val_")))
        raise KeyError(f"metric '{metric}' is not in the results; available: {', '.join(available)}")
    planned_by_dataset = {
        dataset: {int(s) for s in (seeds if seeds is not None else part["seed"])}
        for dataset, part in runs.groupby("dataset", sort=False, dropna=False)
    }
    rows = []
    for key, group in runs.groupby(list(GROUP), sort=False, dropna=False):
        ok = group[group["status"] == "ok"]
        values = ok[metric].astype(float).to_numpy()
        finite = np.isfinite(values)
        good = ok[finite]
        values = values[finite]
        mean, half = t_interval(values)
        planned = planned_by_dataset[key[0]]
        rows.append(
            {
                **dict(zip(GROUP, key, strict=True)),
                "n": len(values),
                "runs": len(group),
                "failed": int((group["status"] == "failed").sum()),
                "diverged": int((group["status"] == "diverged").sum()),
                "nan_runs": int((~finite).sum()),
                "planned": len(planned),
                "complete": planned <= {int(s) for s in good["seed"]},
                "mean": mean,
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else float("nan"),
                "ci": half,
                "params": int(ok["params"].max()) if len(ok) else int(group["params"].max() or 0),
                "train_time": float(ok["train_time"].mean()) if len(ok) else float("nan"),
                "_seeds": dict(zip(good["seed"].astype(int), values, strict=True)),
                "_ids": dict(zip(good["seed"].astype(int), good["run_id"].astype(str), strict=True)),
            }
        )
    table = pd.DataFrame(rows)
    out = []
    for _, part in table.groupby("dataset", sort=False):
        part = part.sort_values(
            ["complete", "mean"],
            ascending=[False, direction == "min"],
            na_position="last",
            kind="stable",
        ).reset_index(drop=True)
        part["rank"] = np.arange(1, len(part) + 1)
        part["is_best"] = part.index == 0
        best = part.iloc[0]
        p_t, p_m, deciding, tests = [], [], [], []
        for _, row in part.iterrows():
            if row["is_best"] or row["n"] == 0:
                p_t.append(float("nan"))
                p_m.append(float("nan"))
                deciding.append(float("nan"))
                tests.append("")
                continue
            shared = sorted(set(row["_seeds"]) & set(best["_seeds"]))
            pt = paired_t_test([best["_seeds"][s] for s in shared], [row["_seeds"][s] for s in shared])
            pm = _pooled_mcnemar(shared, best["_ids"], row["_ids"], predictions)
            p_t.append(pt)
            p_m.append(pm)
            if len(shared) >= 2 and not math.isnan(pt):
                deciding.append(pt)
                tests.append("paired t")
            elif not math.isnan(pm):
                deciding.append(pm)
                tests.append("McNemar")
            else:
                deciding.append(float("nan"))
                tests.append("")
        part["p_ttest"], part["p_mcnemar"], part["test"] = p_t, p_m, tests
        part["p_adjusted"] = holm(deciding)
        part["significant"] = [bool(p < ALPHA) if not math.isnan(p) else False for p in part["p_adjusted"]]
        out.append(part)
    result = pd.concat(out, ignore_index=True).drop(columns=["_seeds", "_ids"])
    return result[columns]


def _pooled_mcnemar(
    seeds: list[int],
    best_ids: dict[int, str],
    other_ids: dict[int, str],
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
