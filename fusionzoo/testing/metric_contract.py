"""The metric contract: :func:`check_metric`.

    from fusionzoo.testing import check_metric
    check_metric("macro_prf")           # a registered name/spec, a Metric subclass, or an instance

Declarations (every metric): a non-empty ``name``, ``direction`` ``max`` or ``min``, and the result
columns it writes (``output_columns()``: names, or fnmatch patterns such as ``acc_geo_*``).

Prediction metrics (``kind = "predictions"``) are also computed on small seeded contexts (64 rows,
5 classes, metadata with ``geo``/``is_human``, class-frequency buckets):

- the values are a dict of floats, each finite or NaN; every key matches a declared column or pattern,
  and every declared (non-pattern) column is returned when labels, scores, metadata and buckets are
  all given;
- deterministic: the same context gives the same values, and ``compute`` leaves its inputs unchanged;
- NaN-safe: an empty split gives NaN for every column (through ``compute_metrics``), and a context
  whose subsets are empty (no human rows, no metadata, no buckets) gives NaN or omits the column, never
  an exception;
- a perfect prediction (one-hot scores on the true labels) scores at least as well as random scores,
  in the declared direction, on every column both produce.

Metrics of other kinds (model-cost metrics that need a model, not predictions) are checked for their
declarations only.
"""

from __future__ import annotations

import fnmatch
import math
from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.testing._plugins import build_plugin
from fusionzoo.testing.contracts import ContractError

__all__ = ["check_metric", "example_context"]

ROWS, CLASSES = 64, 5


def example_context(seed: int = 0, *, perfect: bool = False, meta: bool = True, buckets: bool = True) -> Any:
    """A seeded :class:`~fusionzoo.metrics.base.EvalContext`: every class present, ``perfect`` one-hot
    scores on the labels (else standard-normal logits), metadata with two geos and ~half human rows."""
    from fusionzoo.metrics.base import EvalContext
    from fusionzoo.metrics.class_buckets import class_buckets

    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(CLASSES), rng.integers(0, CLASSES, ROWS - CLASSES)])
    noise = rng.normal(size=(ROWS, CLASSES))  # drawn either way: perfect and random share the metadata
    scores = np.eye(CLASSES)[labels] if perfect else noise
    frame = pd.DataFrame(
        {
            "geo": rng.choice(["cz", "sk"], ROWS),
            "is_human": rng.random(ROWS) < 0.5,
            "label_source": "admin",
        }
    )
    return EvalContext(
        labels,
        scores,
        CLASSES,
        meta=frame if meta else None,
        buckets=class_buckets(labels, CLASSES) if buckets else None,
    )


def check_metric(target: Any, seed: int = 0, **hp: Any) -> None:
    """Validate a metric plugin (see the module docstring); ``hp``: constructor keyword arguments."""
    from fusionzoo.metrics.base import Metric

    metric, name = build_plugin("metric", target, Metric, hp)
    columns = _check_declarations(name, metric)
    if getattr(metric, "kind", "predictions") != "predictions":
        return
    values = _compute(name, metric, example_context(seed), columns, "compute returns float values")
    concrete = [c for c in columns if not _is_pattern(c)]
    absent = [c for c in concrete if c not in values]
    if absent:
        raise ContractError(
            name,
            "returns every declared column",
            f"{', '.join(absent)} missing with labels, scores, metadata and buckets given",
        )
    _check_deterministic(name, metric, seed, columns, values)
    _check_nan_safe(name, metric, seed, columns)
    _check_direction(name, metric, seed, columns)


def _is_pattern(column: str) -> bool:
    return any(ch in column for ch in "*?[")


def _check_declarations(name: str, metric: Any) -> tuple[str, ...]:
    if not isinstance(getattr(metric, "name", None), str) or not metric.name:
        raise ContractError(name, "declares a name", f"name = {getattr(metric, 'name', None)!r}")
    if getattr(metric, "direction", None) not in ("max", "min"):
        raise ContractError(name, "direction is max or min", f"direction = {metric.direction!r}")
    try:
        columns = tuple(metric.output_columns())
    except Exception as exc:
        raise ContractError(name, "declares its columns", f"output_columns() raised {exc!r}") from exc
    if not columns or not all(isinstance(c, str) and c for c in columns):
        raise ContractError(name, "declares its columns", f"output_columns() = {columns!r}")
    return columns


def _compute(name: str, metric: Any, ctx: Any, columns: tuple[str, ...], rule: str) -> dict[str, float]:
    try:
        values = metric.compute(ctx)
    except Exception as exc:
        raise ContractError(name, rule, f"compute raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(values, dict):
        raise ContractError(name, "compute returns float values", f"got {type(values).__name__}")
    out: dict[str, float] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not any(fnmatch.fnmatchcase(key, c) for c in columns):
            raise ContractError(
                name,
                "returned columns match the declared columns",
                f"{key!r} matches none of {', '.join(columns)}",
            )
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise ContractError(name, "compute returns float values", f"{key} = {value!r}") from exc
        if math.isinf(number):
            raise ContractError(name, "values are finite or NaN", f"{key} = {number}")
        out[key] = number
    return out


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all((math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)


def _check_deterministic(
    name: str, metric: Any, seed: int, columns: tuple[str, ...], first: dict[str, float]
) -> None:
    ctx = example_context(seed)
    labels, scores, meta = ctx.labels.copy(), ctx.scores.copy(), ctx.meta.copy()
    second = _compute(name, metric, ctx, columns, "compute is deterministic")
    if not _same(first, second):
        diff = {
            k: (first.get(k), second.get(k))
            for k in first.keys() | second.keys()
            if first.get(k) != second.get(k)
        }
        raise ContractError(name, "compute is deterministic", f"two calls differ: {diff}")
    if not (
        np.array_equal(labels, ctx.labels) and np.array_equal(scores, ctx.scores) and meta.equals(ctx.meta)
    ):
        raise ContractError(
            name, "compute leaves its inputs unchanged", "labels, scores or meta were modified"
        )


def _check_nan_safe(name: str, metric: Any, seed: int, columns: tuple[str, ...]) -> None:
    from fusionzoo.metrics.base import EvalContext, compute_metrics

    empty = EvalContext(np.zeros(0, dtype=np.int64), np.zeros((0, CLASSES)), CLASSES)
    values = compute_metrics(empty, [metric])
    bad = {k: v for k, v in values.items() if not math.isnan(v)}
    if bad:
        raise ContractError(name, "NaN on an empty split", f"got {bad}")
    rule = "NaN-safe on empty subsets (no human rows, no metadata, no buckets)"
    nobody = example_context(seed)
    nobody.meta["is_human"] = False
    _compute(name, metric, nobody, columns, rule)
    _compute(name, metric, example_context(seed, meta=False, buckets=False), columns, rule)


def _check_direction(name: str, metric: Any, seed: int, columns: tuple[str, ...]) -> None:
    rule = f"a perfect prediction scores at least as well as a random one ({metric.direction})"
    perfect = _compute(name, metric, example_context(seed, perfect=True), columns, rule)
    random = _compute(name, metric, example_context(seed), columns, rule)
    sign = 1.0 if metric.direction == "max" else -1.0
    for key in perfect.keys() & random.keys():
        if math.isnan(perfect[key]) or math.isnan(random[key]):
            continue
        if sign * (perfect[key] - random[key]) < -1e-12:
            raise ContractError(name, rule, f"{key}: perfect {perfect[key]:.4g}, random {random[key]:.4g}")
