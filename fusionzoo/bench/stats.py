"""Statistics of a results table: mean ± 95% t-interval over seeds, paired tests against the best config.

For each configuration (one ``config_id``: same data, fusion, head, training config) with ``n`` ok runs (one per seed):

    mean ± t_{0.975, n-1} · s / √n             (no interval with n = 1)

Within each dataset the configuration with the highest mean is the reference. Every other one is
compared with it on the seeds both have run:

- **paired t-test over seeds** (``scipy.stats.ttest_rel``) on the metric — this is the test that
  decides the significance mark when there are ≥ 2 shared seeds, because the spread between seeds is
  the variance a reader cares about;
- **McNemar's test** on the test predictions of the shared seeds, pooled (exact binomial test on the
  discordant pairs ``b``/``c``; χ² with continuity correction when ``b + c > 50``) — reported as a
  second opinion, and used for the mark when only one seed is shared.

The p-values of one leaderboard are Holm-adjusted (family = all comparisons against the reference in
that dataset) before comparing with α = 0.05, so adding configurations does not inflate false marks.
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
    """(mean, half-width) of the two-sided t confidence interval; half-width NaN for fewer than 2 values."""
    arr = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if len(arr) == 0:
        return float("nan"), float("nan")
    mean = float(arr.mean())
    if len(arr) < 2:
        return mean, float("nan")
    sem = float(arr.std(ddof=1)) / math.sqrt(len(arr))
    return mean, float(sps.t.ppf(0.5 + confidence / 2, len(arr) - 1) * sem)


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the paired t-test; 1.0 when the differences are all equal to zero, NaN if n < 2."""
    a_arr, b_arr = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a_arr) != len(b_arr):
        raise ValueError("paired samples must have the same length")
    if len(a_arr) < 2:
        return float("nan")
    diff = a_arr - b_arr
    if np.allclose(diff, diff[0]):
        return 1.0 if np.isclose(diff[0], 0.0) else 0.0  # constant non-zero difference: no variance at all
    return float(sps.ttest_rel(a_arr, b_arr).pvalue)


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Two-sided McNemar p-value for paired correctness vectors (exact binomial, or χ² when b + c > 50)."""
    a, b_ = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b_.shape:
        raise ValueError(f"McNemar needs predictions on the same rows: {a.shape} vs {b_.shape}")
    b = int(np.sum(a & ~b_))
    c = int(np.sum(~a & b_))
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
) -> pd.DataFrame:
    """One row per configuration, sorted (per dataset) by mean ``metric`` descending.

    Columns: the :data:`GROUP` columns, ``n`` (ok runs), ``runs`` (all runs), ``failed``, ``diverged``,
    ``mean``, ``std``, ``ci`` (half-width), ``params``, ``train_time`` (mean s), ``rank``, ``is_best``,
    ``p_ttest``, ``p_mcnemar`` (raw), ``p_adjusted`` (Holm, of the deciding test), ``test`` (which
    test decided), ``significant`` (worse than the best at α = 0.05 after adjustment).

    ``predictions(run_id)`` returns a run's ``(test predictions, test labels)`` or ``None`` (for
    McNemar); without it only the t-test is used.
    """
    columns = [
        *GROUP,
        "n",
        "runs",
        "failed",
        "diverged",
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
    if runs is None or len(runs) == 0:
        return pd.DataFrame(columns=columns)
    if metric not in runs.columns:
        available = sorted(c for c in runs.columns if c.startswith(("test_", "val_")))
        raise KeyError(f"metric '{metric}' is not in the results; available: {', '.join(available)}")
    rows = []
    for key, group in runs.groupby(list(GROUP), sort=False, dropna=False):
        ok = group[group["status"] == "ok"]
        values = ok[metric].astype(float).to_numpy()
        mean, half = t_interval(values)
        rows.append(
            {
                **dict(zip(GROUP, key, strict=True)),
                "n": len(ok),
                "runs": len(group),
                "failed": int((group["status"] == "failed").sum()),
                "diverged": int((group["status"] == "diverged").sum()),
                "mean": mean,
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else float("nan"),
                "ci": half,
                "params": int(ok["params"].max()) if len(ok) else int(group["params"].max() or 0),
                "train_time": float(ok["train_time"].mean()) if len(ok) else float("nan"),
                "_seeds": dict(zip(ok["seed"].astype(int), values, strict=True)),
                "_ids": dict(zip(ok["seed"].astype(int), ok["run_id"].astype(str), strict=True)),
            }
        )
    table = pd.DataFrame(rows)
    out = []
    for _, part in table.groupby("dataset", sort=False):
        part = part.sort_values("mean", ascending=False, na_position="last").reset_index(drop=True)
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
            if len(shared) >= 2:
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
    if predictions is None or not seeds:
        return float("nan")
    best_correct, other_correct = [], []
    for seed in seeds:
        a, b = predictions(best_ids[seed]), predictions(other_ids[seed])
        if a is None or b is None or a[0].shape != b[0].shape or not np.array_equal(a[1], b[1]):
            return float("nan")  # not the same test rows: McNemar does not apply
        best_correct.append(a[0] == a[1])
        other_correct.append(b[0] == b[1])
    return mcnemar(np.concatenate(best_correct), np.concatenate(other_correct))
