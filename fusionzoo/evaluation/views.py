"""Per-run columns computed from the evaluation tables, for leaderboards and reports.

:func:`run_extras` returns, for the rows of a runs table, the columns a reporter can show or rank by:

- ``train_protocol`` (from the run's config; ``""`` for clean training);
- ``distill_teacher`` (from the run's config: the teacher's ``<config_id>:seeds=…``; ``""`` when the run
  was not distilled);
- ``rel_robust_<label>`` / ``eff_robust_<label>`` per protocol (the registered ``relative_robustness``
  and ``effective_robustness`` metrics of the run's curve of the *robustness metric*
  (:func:`robustness_metric`: the ranking metric when it is a test prediction column, else
  ``test_accuracy``); ``<label>`` is the protocol's short name, e.g. ``missing_image``,
  ``image_corruption_motion_blur``);
- the efficiency columns of the run's efficiency key (``gflops_forward``, ``gflops_train_step``,
  ``latency_p50_ms``, ``latency_p95_ms``, ``throughput``, ``peak_memory_mb``), joined through the
  feature shapes ``fusionzoo eval`` records in ``inputs/<data_fingerprint>.json``;
- ``s_per_epoch``: the mean ``epoch_time`` of the run's history.

:func:`robustness_summary` aggregates the curves per configuration (mean over seeds) with the raw and
the table-normalised scores; :func:`pareto_table` marks the accuracy-vs-cost Pareto fronts per dataset.

Every summary — ``fusionzoo eval``'s printout, the terminal leaderboard, the HTML report — gets its
per-run R and ER from :func:`run_curves`, computed over the **whole runs directory** (each run against
its own reference configuration, :mod:`fusionzoo.robustness`) with the reference the last
``fusionzoo eval`` recorded (:meth:`~fusionzoo.evaluation.tables.EvalTables.reference`), so a run's
numbers do not depend on which other runs a view shows.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.evaluation.tables import EvalTables, efficiency_key_of
from fusionzoo.robustness import curve_table, maxmin_normalise, pareto_front, settings_key

__all__ = [
    "EFFICIENCY_COLUMNS",
    "pareto_table",
    "protocol_label",
    "reference_settings",
    "robustness_metric",
    "robustness_summary",
    "run_curves",
    "run_efficiency",
    "run_extras",
]

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


def _config(config_json: Any) -> dict[str, Any]:
    try:
        config = json.loads(config_json)
    except (TypeError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _train_protocol(config_json: Any) -> str:
    return str(_config(config_json).get("train_protocol", "") or "")


def _distill_teacher(config_json: Any) -> str:
    return str(_config(config_json).get("distill_teacher", "") or "")


def robustness_metric(metric: str, columns: Any) -> str:
    """The column robustness curves, R and ER are computed on: ``metric`` (the ranking metric, ``test_``
    prefixed when bare) when the robustness rows have it, else ``test_accuracy``."""
    column = metric if metric.startswith(("test_", "val_")) else f"test_{metric}"
    return column if column.startswith("test_") and column in set(columns) else "test_accuracy"


def _tuned_identities(store: Any) -> set[str]:
    """The configurations ``bench --tune-trials`` chose (``tuned.json``), without fusion, head and seed."""
    path = store.dir / "tuned.json"
    try:
        cells = json.loads(path.read_text()).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return set()
    return {_identity(c.get("config", {})) for c in cells if isinstance(c, dict)}


def _identity(config: dict[str, Any]) -> str:
    skip = ("fusion", "head", "seed", "device", "amp", "eval_batch_size")
    return json.dumps({k: v for k, v in config.items() if k not in skip}, sort_keys=True, default=str)


def reference_settings(store: Any, runs: pd.DataFrame) -> dict[str, str]:
    """``{run_id: settings key}`` of ``runs`` (:func:`~fusionzoo.robustness.settings_key`): what
    a run's ER reference must share with it; a run ``bench --tune-trials`` trained is marked tuned."""
    from fusionzoo.train.config import RunConfig

    defaults = RunConfig().to_dict()  # configs of older versions lack newer fields: their defaults
    tuned = _tuned_identities(store)
    out = {}
    for run_id, config_json, fingerprint in zip(
        runs["run_id"].astype(str), runs["config"], runs["data_fingerprint"].astype(str), strict=True
    ):
        config = {**defaults, **_config(config_json)}
        out[run_id] = settings_key(config, fingerprint, _identity(config) in tuned)
    return out


def run_curves(store: Any, metric: str = "test_accuracy", reference: str | None = None) -> pd.DataFrame:
    """R and ER per (ok run, protocol) of the whole runs directory (``curve_table``), with ``label`` and
    ``metric``; ``reference`` defaults to the one the last ``fusionzoo eval`` recorded. Empty without
    robustness rows."""
    rows = EvalTables(store).robustness()
    runs = store.load()
    if not len(rows) or not len(runs):
        return pd.DataFrame()
    runs = runs[runs["status"] == "ok"]
    rows = rows[rows["run_id"].astype(str).isin(set(runs["run_id"].astype(str)))]
    metric = robustness_metric(metric, rows.columns)
    if metric not in rows.columns or not len(rows):
        return pd.DataFrame()
    reference = reference or EvalTables(store).reference()
    table = curve_table(rows, metric, reference, settings=reference_settings(store, runs))
    table["label"] = table["protocol"].map(protocol_label)
    table["metric"] = metric
    return table


def _curves(store: Any, runs: pd.DataFrame, reference: str | None, metric: str) -> pd.DataFrame:
    if not len(runs):
        return pd.DataFrame()
    table = run_curves(store, metric, reference)
    if not len(table):
        return table
    return table[table["run_id"].astype(str).isin(set(runs["run_id"].astype(str)))]


def run_extras(
    store: Any, runs: pd.DataFrame, reference: str | None = None, metric: str = "test_accuracy"
) -> pd.DataFrame:
    """Extra per-run columns (see the module docstring), indexed like ``runs``; R/ER of the robustness
    metric of ``metric`` (:func:`robustness_metric`) against ``reference`` (default: the recorded one).
    ``extras.attrs`` holds ``robustness_metric`` and ``reference`` when there are R/ER columns."""
    extras = pd.DataFrame(index=runs.index)
    if not len(runs):
        return extras
    extras["train_protocol"] = runs["config"].map(_train_protocol) if "config" in runs else ""
    extras["distill_teacher"] = runs["config"].map(_distill_teacher) if "config" in runs else ""
    curves = _curves(store, runs, reference, metric)
    if len(curves):
        extras.attrs.update(
            robustness_metric=str(curves["metric"].iloc[0]),
            reference=reference or EvalTables(store).reference(),
        )
        for kind in ("rel_robust", "eff_robust"):
            wide = curves.pivot_table(index="run_id", columns="label", values=kind, aggfunc="first")
            for label in wide.columns:
                extras[f"{kind}_{label}"] = runs["run_id"].astype(str).map(wide[label])
    matched = run_efficiency(store, runs)
    for column in EFFICIENCY_COLUMNS:
        if column in matched.columns:
            extras[column] = matched[column].astype(float)
    history = store.load_history()
    if len(history) and "epoch_time" in history.columns:
        per_epoch = history.groupby(history["run_id"].astype(str))["epoch_time"].mean()
        extras["s_per_epoch"] = runs["run_id"].astype(str).map(per_epoch)
    return extras


def run_efficiency(store: Any, runs: pd.DataFrame) -> pd.DataFrame:
    """The ``efficiency.parquet`` row of each ok run of ``runs`` (indexed like ``runs``; all-NaN rows for
    runs without a measurement): its efficiency key from the run's RunConfig and the feature shapes in
    ``inputs/<data_fingerprint>.json``, a GPU measurement first when there is one. Empty frame without
    the table."""
    from fusionzoo.evaluation.inputs import load_shapes
    from fusionzoo.evaluation.runner import efficiency_parts
    from fusionzoo.train.config import RunConfig

    efficiency = EvalTables(store).efficiency()
    if not len(efficiency) or not len(runs):
        return pd.DataFrame(index=runs.index)
    by_key = efficiency.drop_duplicates("efficiency_key", keep="last").set_index("efficiency_key")
    rows = []
    for _, run in runs.iterrows():
        shapes = load_shapes(store.dir, str(run["data_fingerprint"]))
        row = None
        if shapes and run.get("status") == "ok":
            config = RunConfig.from_json(run["config"])
            for device in ("cuda", "cpu"):
                key = efficiency_key_of(efficiency_parts(run, config, shapes, device))
                if key in by_key.index:
                    row = by_key.loc[key].to_dict() | {"efficiency_key": key}
                    break
        rows.append(row or {})
    return pd.DataFrame(rows, index=runs.index, columns=[*by_key.columns, "efficiency_key"])


def robustness_summary(
    store: Any, runs: pd.DataFrame, reference: str | None = None, metric: str = "test_accuracy"
) -> pd.DataFrame:
    """One row per (configuration, protocol): mean relative / effective robustness over seeds, their
    table-normalised values (max–min over the configurations of the dataset and protocol), the
    clean score, the number of seeds, the ``metric`` they are computed on and the ``reference_config``."""
    curves = _curves(store, runs, reference, metric)
    if not len(curves):
        return pd.DataFrame()
    keys = ["dataset", "protocol", "label", "config_id", "fusion", "head", "train_protocol", "metric"]
    curves["train_protocol"] = curves["train_protocol"].fillna("")
    summary = (
        curves.groupby(keys, sort=False, dropna=False)
        .agg(seeds=("run_id", "nunique"), clean=("clean", "mean"), rel_robust=("rel_robust", "mean"),
             eff_robust=("eff_robust", "mean"), reference_config=("reference_config", "first"),
             reference_label=("reference_label", "first"))
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
