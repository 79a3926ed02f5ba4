"""Per-run columns computed from the evaluation tables, for leaderboards and reports.

:func:`run_extras` returns, for the rows of a runs table, the columns a reporter can show or rank by:

- ``train_protocol`` (from the run's config; ``""`` for clean training);
- ``rel_robust_<label>`` / ``eff_robust_<label>`` per protocol (the registered ``relative_robustness``
  and ``effective_robustness`` metrics of the run's ``test_accuracy`` curve; ``<label>`` is the
  protocol's short name, e.g. ``missing_image``, ``image_corruption_motion_blur``);
- the efficiency columns of the run's efficiency key (``gflops_forward``, ``gflops_train_step``,
  ``latency_p50_ms``, ``latency_p95_ms``, ``throughput``, ``peak_memory_mb``), joined through the
  feature shapes ``fusionzoo eval`` records in ``inputs/<data_fingerprint>.json``;
- ``s_per_epoch``: the mean ``epoch_time`` of the run's history.

:func:`robustness_summary` aggregates the curves per configuration (mean over seeds) with the raw and
the table-normalised scores; :func:`pareto_table` marks the accuracy-vs-cost Pareto fronts per dataset.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.evaluation.summaries import REFERENCE_FUSION, curve_table, maxmin_normalise, pareto_front
from fusionzoo.evaluation.tables import EvalTables, efficiency_key_of

__all__ = ["EFFICIENCY_COLUMNS", "protocol_label", "pareto_table", "robustness_summary", "run_extras"]

EFFICIENCY_COLUMNS = (
    "gflops_forward",
    "gflops_train_step",
    "latency_p50_ms",
    "latency_p95_ms",
    "throughput",
    "peak_memory_mb",
)


@lru_cache(maxsize=256)
def protocol_label(spec: str) -> str:
    """The short label of a canonical protocol spec (its name if the plugin is not installed)."""
    from fusionzoo import registry

    try:
        return registry.create("protocol", spec).label
    except (registry.RegistryError, ValueError):
        return registry.parse_spec(spec)[0]


def _train_protocol(config_json: Any) -> str:
    try:
        return str(json.loads(config_json).get("train_protocol", "") or "")
    except (TypeError, ValueError):
        return ""


def _curves(store: Any, runs: pd.DataFrame, reference: str) -> pd.DataFrame:
    rows = EvalTables(store).robustness()
    if not len(rows) or not len(runs):
        return pd.DataFrame()
    rows = rows[rows["run_id"].astype(str).isin(set(runs["run_id"].astype(str)))]
    if "test_accuracy" not in rows.columns or not len(rows):
        return pd.DataFrame()
    table = curve_table(rows, "test_accuracy", reference)
    table["label"] = table["protocol"].map(protocol_label)
    return table


def run_extras(store: Any, runs: pd.DataFrame, reference: str = REFERENCE_FUSION) -> pd.DataFrame:
    """Extra per-run columns (see the module docstring), indexed like ``runs``."""
    from fusionzoo.evaluation.inputs import load_shapes
    from fusionzoo.evaluation.runner import efficiency_parts
    from fusionzoo.train.config import RunConfig

    extras = pd.DataFrame(index=runs.index)
    if not len(runs):
        return extras
    extras["train_protocol"] = runs["config"].map(_train_protocol) if "config" in runs else ""
    curves = _curves(store, runs, reference)
    if len(curves):
        for kind in ("rel_robust", "eff_robust"):
            wide = curves.pivot_table(index="run_id", columns="label", values=kind, aggfunc="first")
            for label in wide.columns:
                extras[f"{kind}_{label}"] = runs["run_id"].astype(str).map(wide[label])
    efficiency = EvalTables(store).efficiency()
    if len(efficiency):
        by_key = efficiency.drop_duplicates("efficiency_key", keep="last").set_index("efficiency_key")
        values: dict[str, list[float]] = {c: [] for c in EFFICIENCY_COLUMNS if c in by_key.columns}
        for _, run in runs.iterrows():
            shapes = load_shapes(store.dir, str(run["data_fingerprint"]))
            row = None
            if shapes and run.get("status") == "ok":
                config = RunConfig.from_json(run["config"])
                for device in ("cuda", "cpu"):  # a GPU measurement when there is one
                    key = efficiency_key_of(efficiency_parts(run, config, shapes, device))
                    if key in by_key.index:
                        row = by_key.loc[key]
                        break
            for column, out in values.items():
                out.append(float(row[column]) if row is not None else float("nan"))
        for column, out in values.items():
            extras[column] = out
    history = store.load_history()
    if len(history) and "epoch_time" in history.columns:
        per_epoch = history.groupby(history["run_id"].astype(str))["epoch_time"].mean()
        extras["s_per_epoch"] = runs["run_id"].astype(str).map(per_epoch)
    return extras


def robustness_summary(store: Any, runs: pd.DataFrame, reference: str = REFERENCE_FUSION) -> pd.DataFrame:
    """One row per (configuration, protocol): mean relative / effective robustness over seeds, their
    table-normalised values (max–min over the configurations of the dataset and protocol), the
    clean score and the number of seeds."""
    curves = _curves(store, runs, reference)
    if not len(curves):
        return pd.DataFrame()
    keys = ["dataset", "protocol", "label", "config_id", "fusion", "head", "train_protocol"]
    curves["train_protocol"] = curves["train_protocol"].fillna("")
    summary = (
        curves.groupby(keys, sort=False, dropna=False)
        .agg(seeds=("run_id", "nunique"), clean=("clean", "mean"), rel_robust=("rel_robust", "mean"),
             eff_robust=("eff_robust", "mean"))
        .reset_index()
    )  # fmt: skip
    for kind in ("rel_robust", "eff_robust"):
        summary[f"{kind}_norm"] = summary.groupby(["dataset", "protocol"], sort=False)[kind].transform(
            maxmin_normalise
        )
    return summary


def pareto_table(summary: pd.DataFrame, accuracy: str = "mean") -> pd.DataFrame:
    """``summary`` (one row per configuration with ``dataset``, ``accuracy`` and efficiency columns)
    with ``pareto_gflops`` and ``pareto_latency``: on the accuracy-vs-GFLOPs / -latency front of its
    dataset."""
    out = summary.copy()
    for column, cost in (("pareto_gflops", "gflops_forward"), ("pareto_latency", "latency_p50_ms")):
        out[column] = False
        if cost not in out.columns:
            continue
        for _, part in out.groupby("dataset", sort=False):
            out.loc[part.index, column] = pareto_front(part, cost, accuracy).to_numpy()
    return out


def per_config(runs: pd.DataFrame, extras: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Mean of ``columns`` of ``extras`` per ``config_id`` (ok runs)."""
    ok = runs["status"] == "ok"
    joined = pd.concat([runs.loc[ok, ["config_id"]], extras.loc[ok, columns]], axis=1)
    return joined.groupby("config_id").agg(lambda v: float(np.nanmean(v)) if np.isfinite(v).any() else np.nan)
