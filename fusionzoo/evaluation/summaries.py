"""Summaries of robustness curves (MultiBench's definitions) and Pareto fronts; pure numpy/pandas.

For a curve f over levels x_0 = 0 < x_1 < … < x_K (f_0 = the clean score):

- **relative robustness** = ∫ f dx, the trapezoid area under the curve with the levels rescaled to
  [0, 1] (x̃ = (x − x_0)/(x_K − x_0)); for MultiBench's grid 0, 0.1, …, 1 this is exactly its
  ``relative_robustness_helper``, and for a flat curve it equals the clean score;
- **effective robustness** = Σ_i (f_i − β_i), β = r − r_0 + f_0 the reference fusion's curve r
  (default ``concat_mlp``, mean over its seeds) shifted to start at the method's clean score: how much
  less (negative) or more (positive) the method loses than the reference, summed over levels;
- **table-normalised** score = (s − min)/(max − min) over the compared methods (MultiBench's
  ``maxmin_normalize``); NaN when every method scores the same.

:func:`pareto_front` marks the non-dominated configurations of two objectives (e.g. accuracy vs FLOPs).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "REFERENCE_FUSION",
    "curve_table",
    "effective_robustness",
    "maxmin_normalise",
    "pareto_front",
    "relative_robustness",
]

REFERENCE_FUSION = "concat_mlp"


def _curve(levels: Sequence[float], values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(levels, dtype=float)
    y = np.asarray(values, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"a curve needs >= 2 levels and one value per level, got {x.shape} and {y.shape}")
    order = np.argsort(x)
    return x[order], y[order]


def relative_robustness(levels: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoid area under ``values`` over ``levels`` rescaled to [0, 1] (see the module docstring)."""
    x, y = _curve(levels, values)
    span = x[-1] - x[0]
    if span <= 0:
        raise ValueError("the levels of a curve must not all be equal")
    return float(np.trapezoid(y, (x - x[0]) / span))


def effective_robustness(
    levels: Sequence[float], values: Sequence[float], reference: Sequence[float]
) -> float:
    """Σ_i (f_i − β_i), β = reference − reference_0 + f_0 (the reference shifted to f's clean score)."""
    x, y = _curve(levels, values)
    _, r = _curve(levels, reference)
    beta = r - r[0] + y[0]
    return float(np.sum(y - beta))


def maxmin_normalise(scores: pd.Series | Sequence[float]) -> pd.Series:
    """(s − min)/(max − min) over the given methods (NaN entries stay NaN; all equal → NaN)."""
    series = pd.Series(scores, dtype=float)
    low, high = series.min(), series.max()
    if not np.isfinite(high - low) or high == low:
        return pd.Series(np.nan, index=series.index)
    return (series - low) / (high - low)


def curve_table(
    rows: pd.DataFrame, metric: str = "test_accuracy", reference: str = REFERENCE_FUSION
) -> pd.DataFrame:
    """Per run and protocol: relative and effective robustness of ``metric``.

    ``rows``: robustness rows (``run_id, config_id, dataset, fusion, head, seed, protocol,
    train_protocol, level, <metric>``). The reference curve of a (dataset, protocol, head?) group is
    the mean over the seeds of the ``reference`` fusion's runs with no train-time protocol, at each
    level (any head; NaN effective robustness when the group has none), over the levels the run's and
    the reference's curves share (level 0 included). Returns one row per
    (run, protocol) with ``rel_robust``, ``eff_robust`` (raw) and ``clean``.
    """
    columns = ["run_id", "config_id", "dataset", "fusion", "head", "seed", "protocol", "train_protocol"]
    out = []
    if not len(rows):
        return pd.DataFrame(columns=[*columns, "levels", "clean", "rel_robust", "eff_robust"])
    rows = rows.assign(level=rows["level"].astype(float))
    base = rows["fusion"].astype(str).str.split(":").str[0] == reference
    clean_train = rows["train_protocol"].fillna("").astype(str) == ""
    for _, group in rows.groupby(["dataset", "protocol"], sort=False):
        ref_rows = group[base.loc[group.index] & clean_train.loc[group.index]]
        ref_curve = ref_rows.groupby("level")[metric].mean() if len(ref_rows) else None
        for _, run in group.groupby("run_id", sort=False):
            run = run.sort_values("level")
            levels, values = run["level"].to_numpy(), run[metric].astype(float).to_numpy()
            first = run.iloc[0]
            rel = relative_robustness(levels, values) if len(levels) >= 2 else float("nan")
            eff = float("nan")
            if ref_curve is not None:  # over the levels both curves have (level 0 among them)
                common = [i for i, lv in enumerate(levels) if lv in ref_curve.index]
                if len(common) >= 2 and levels[common[0]] == levels[0]:
                    shared = levels[common]
                    eff = effective_robustness(shared, values[common], ref_curve.loc[shared].to_numpy())
            out.append(
                {**{c: first[c] for c in columns}, "levels": len(levels), "clean": float(values[0]),
                 "rel_robust": rel, "eff_robust": eff}
            )  # fmt: skip
    return pd.DataFrame(out)


def pareto_front(
    frame: pd.DataFrame, x: str, y: str, *, minimise_x: bool = True, maximise_y: bool = True
) -> pd.Series:
    """Boolean mask of the rows of ``frame`` on the Pareto front of (``x``, ``y``).

    A row is dominated when another row is at least as good on both and strictly better on one
    (default: lower ``x`` — FLOPs, latency — and higher ``y`` — accuracy). Rows with NaN are never on
    the front. Call it per dataset.
    """
    xs = frame[x].astype(float).to_numpy() * (1 if minimise_x else -1)
    ys = frame[y].astype(float).to_numpy() * (-1 if maximise_y else 1)
    finite = np.isfinite(xs) & np.isfinite(ys)
    on_front = np.zeros(len(frame), dtype=bool)
    for i in np.flatnonzero(finite):
        better_eq = finite & (xs <= xs[i]) & (ys <= ys[i])
        strictly = (xs < xs[i]) | (ys < ys[i])
        on_front[i] = not np.any(better_eq & strictly)
    return pd.Series(on_front, index=frame.index, name="pareto")
