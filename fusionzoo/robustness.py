"""Summaries of robustness curves (MultiBench's definitions, ER averaged) and Pareto fronts.

For a curve f over levels x_0 = 0 < x_1 < … < x_K (f_0 = the clean score; a curve must start at level 0,
``fusionzoo eval`` adds that level to every grid):

- **relative robustness** R = ∫ f dx̃, the trapezoid area under the curve with the levels rescaled to
  [0, 1] (x̃ = x / x_K); for MultiBench's grid 0, 0.1, …, 1 this is exactly its
  ``relative_robustness_helper``, and for a flat curve it equals the clean score;
- **effective robustness** ER = (1/K) Σ_{i=1..K} (f_i − β_i), β = r − r_0 + f_0 the reference
  configuration's mean curve r shifted to start at the run's clean score: how much less (positive) or
  more (negative) the run loses than the reference, **averaged** over the perturbed levels.
  MultiBench's ``effective_robustness_helper`` sums instead (Σ over all 11 levels of its fixed grid; the
  level-0 term is 0): a sum grows with the number of levels, so ER of a 3-level and an 11-level grid
  could not be compared. On a grid of K perturbed levels, MultiBench's value is K × this one;
- **table-normalised** score = (s − min)/(max − min) over the compared methods (MultiBench's
  ``maxmin_normalize``); NaN when every method scores the same.

**The reference of a run** (:func:`curve_table`): the clean-trained runs (no train-time protocol) of
the *reference fusion* (``[eval] reference``, default ``concat_mlp``) evaluated under the same protocol
whose **settings** equal the run's (:func:`settings_key`): the same dataset and data fingerprint, the
same head setting (the same head spec, or both fusions with their own default head) and every other
training setting of the RunConfig (dim, epochs, batch size, lr, ...), tuned runs (``bench
--tune-trials``) against the tuned reference of the same settings. Its curve is the mean over those
runs' seeds. A run without such a reference (or with several candidate configurations of the reference
fusion, e.g. two option sets: name one in ``[eval] reference``) has no ER. So a run's ER depends on its
own reference configuration only, never on which other runs are shown.

:func:`pareto_front` marks the non-dominated configurations of two objectives (e.g. accuracy vs FLOPs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.registry import RegistryError, parse_spec

__all__ = [
    "REFERENCE_FUSION",
    "TUNED_FIELDS",
    "curve_table",
    "effective_robustness",
    "is_reference_fusion",
    "maxmin_normalise",
    "pareto_front",
    "relative_robustness",
    "settings_key",
]

REFERENCE_FUSION = "concat_mlp"
# the RunConfig fields bench --tune-trials chooses per cell (fusionzoo.tune.space.TRAIN_FIELD_OF)
TUNED_FIELDS = ("dropout", "label_smoothing", "lr", "weight_decay")
# RunConfig fields a run and its reference may differ in: what is compared, the seed, the train-time
# protocol (the reference is clean-trained) and where it ran
_NOT_SETTINGS = ("fusion", "seed", "train_protocol", "device", "amp", "eval_batch_size", "num_workers")


def _curve(levels: Sequence[float], values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(levels, dtype=float)
    y = np.asarray(values, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"a curve needs >= 2 levels and one value per level, got {x.shape} and {y.shape}")
    order = np.argsort(x)
    x, y = x[order], y[order]
    if x[0] != 0:
        raise ValueError(
            f"a robustness curve starts at level 0 (the clean test set), got levels {x.tolist()}"
        )
    return x, y


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
    """(1/K) Σ_{i≥1} (f_i − β_i), β = reference − reference_0 + f_0 (the reference shifted to f's clean
    score), over the K levels above 0 (see the module docstring for why a mean, not MultiBench's sum)."""
    x, y = _curve(levels, values)
    _, r = _curve(levels, reference)
    beta = r - r[0] + y[0]
    return float(np.mean((y - beta)[1:]))


def settings_key(config: Mapping[str, Any], data_fingerprint: str, tuned: bool = False) -> str:
    """What a run and its ER reference share: the data fingerprint and every RunConfig setting except
    the fusion, seed, train-time protocol and execution fields; for a tuned run the tuned fields (and
    the head's options) are the marker ``tuned`` (each cell is tuned on its own)."""
    settings = {k: v for k, v in config.items() if k not in _NOT_SETTINGS}
    if tuned:
        settings.update({k: "tuned" for k in TUNED_FIELDS})
        if settings.get("head"):
            settings["head"] = str(settings["head"]).partition(":")[0]
    return json.dumps([str(data_fingerprint), settings, bool(tuned)], sort_keys=True, default=str)


def _spec(spec: str) -> tuple[str, dict[str, Any]]:
    try:
        return parse_spec(str(spec))
    except RegistryError:
        return str(spec), {}


def is_reference_fusion(fusion: str, reference: str) -> bool:
    """``fusion`` is the reference fusion: the same name and at least the reference spec's options."""
    name, options = _spec(fusion)
    ref_name, ref_options = _spec(reference)
    return name == ref_name and all(options.get(k) == v for k, v in ref_options.items())


def _reference_config(candidates: pd.DataFrame, reference: str) -> str | None:
    """The one configuration of ``candidates`` (runs of the reference fusion with one settings key):
    the one whose fusion spec is the reference spec exactly, else the only one; ``None`` if ambiguous."""
    configs = candidates.drop_duplicates("config_id")
    exact = configs[configs["fusion"].map(lambda f: _spec(f) == _spec(reference))]
    for pick in (exact, configs):
        if len(pick) == 1:
            return str(pick["config_id"].iloc[0])
    return None


def curve_table(
    rows: pd.DataFrame,
    metric: str = "test_accuracy",
    reference: str = REFERENCE_FUSION,
    *,
    settings: Mapping[str, str],
) -> pd.DataFrame:
    """Per run and protocol: relative and effective robustness of ``metric``.

    ``rows``: robustness rows (``run_id, config_id, dataset, fusion, head, seed, protocol,
    train_protocol, level, <metric>``); ``settings``: ``{run_id: settings key}`` (:func:`settings_key`;
    a run without one has no ER). The reference of each run is chosen as the module docstring says;
    its curve is the mean over the reference configuration's seeds at each level, over the levels the
    run's and the reference's curves share (level 0 and at least one other). A curve without level 0
    has no R or ER. Returns one row per (run, protocol) with ``levels``, ``clean``, ``rel_robust``,
    ``eff_robust`` (raw), ``reference_config`` and ``reference_label`` (the reference's config_id and
    ``fusion + head``; ``""`` when none).
    """
    columns = ["run_id", "config_id", "dataset", "fusion", "head", "seed", "protocol", "train_protocol"]
    out = []
    if not len(rows):
        return pd.DataFrame(
            columns=[
                *columns,
                "levels",
                "clean",
                "rel_robust",
                "eff_robust",
                "reference_config",
                "reference_label",
            ]  # fmt: skip
        )
    rows = rows.assign(level=rows["level"].astype(float), _key=rows["run_id"].astype(str).map(dict(settings)))
    base = rows["fusion"].astype(str).map(lambda f: is_reference_fusion(f, reference))
    clean_train = rows["train_protocol"].fillna("").astype(str) == ""
    for _, group in rows.groupby(["dataset", "protocol"], sort=False):
        references: dict[str, tuple[str, str, pd.Series]] = {}
        pool = group[base.loc[group.index] & clean_train.loc[group.index] & group["_key"].notna()]
        for key, candidates in pool.groupby("_key", sort=False):
            chosen = _reference_config(candidates, reference)
            if chosen is not None:
                mine = candidates[candidates["config_id"].astype(str) == chosen]
                label = f"{mine['fusion'].iloc[0]} + {mine['head'].iloc[0]}"
                references[str(key)] = (chosen, label, mine.groupby("level")[metric].mean())
        for _, run in group.groupby("run_id", sort=False):
            run = run.sort_values("level")
            levels, values = run["level"].to_numpy(), run[metric].astype(float).to_numpy()
            first = run.iloc[0]
            starts_clean = len(levels) >= 2 and levels[0] == 0
            rel = relative_robustness(levels, values) if starts_clean else float("nan")
            eff, chosen, label = float("nan"), "", ""
            found = references.get(str(first["_key"])) if starts_clean else None
            if found is not None:  # over the levels both curves have (level 0 among them)
                chosen, label, ref_curve = found
                common = [i for i, lv in enumerate(levels) if lv in ref_curve.index]
                if len(common) >= 2 and levels[common[0]] == 0:
                    shared = levels[common]
                    eff = effective_robustness(shared, values[common], ref_curve.loc[shared].to_numpy())
            out.append(
                {**{c: first[c] for c in columns}, "levels": len(levels),
                 "clean": float(values[0]) if starts_clean else float("nan"), "rel_robust": rel,
                 "eff_robust": eff, "reference_config": chosen, "reference_label": label}
            )  # fmt: skip
    return pd.DataFrame(out)


def maxmin_normalise(scores: pd.Series | Sequence[float]) -> pd.Series:
    """(s − min)/(max − min) over the given methods (NaN entries stay NaN; all equal → NaN)."""
    series = pd.Series(scores, dtype=float)
    low, high = series.min(), series.max()
    if not np.isfinite(high - low) or high == low:
        return pd.Series(np.nan, index=series.index)
    return (series - low) / (high - low)


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
