"""The metric interface and the evaluation of every registered metric on one split.

    @register_metric
    class Accuracy(Metric):
        name = "accuracy"
        direction = "max"
        def compute(self, ctx: EvalContext) -> dict[str, float]:
            return {"accuracy": float((ctx.preds == ctx.labels).mean())}

``columns`` lists the result columns a metric writes (fnmatch patterns for families such as
``acc_geo_*``); each is stored as ``test_<column>`` and ``val_<column>`` in the results table. A column
whose rows are absent (an empty bucket, no metadata) is NaN. ``kind = "predictions"`` metrics see the
labels, the scores and the metadata of a split (:class:`EvalContext`). Other kinds:

- ``kind = "model"`` (efficiency: params, FLOPs, latency, throughput, memory) compute their columns from
  a model, its input shapes and a device (:class:`ModelContext`); ``fusionzoo eval --efficiency`` runs
  them once per efficiency key and stores ``efficiency.parquet``;
- ``kind = "robustness"`` (relative / effective robustness) summarise a robustness curve
  (:class:`CurveContext`); their columns are computed per run from ``robustness.parquet``.

Only prediction metrics run inside training; every kind's columns can rank a leaderboard.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from fusionzoo.registry import REGISTRIES, RegistryError

__all__ = [
    "CurveContext",
    "EvalContext",
    "ModelContext",
    "Metric",
    "column_direction",
    "compute_metrics",
    "evaluate_predictions",
    "metric_columns",
    "metrics_of_kind",
    "register_metric",
]


def register_metric(obj: Any = None, *, name: str | None = None) -> Any:
    """Register a metric class (bare or ``@register_metric("name")``)."""
    return REGISTRIES["metric"].register(obj, name=name)


@dataclass
class EvalContext:
    """What a prediction metric sees for one split.

    labels (N,) int; scores (N, C) logits or probabilities; preds = argmax of scores;
    meta: N rows with ``geo``, ``is_human``, ``label_source`` (or None); buckets (C,) class-frequency
    bucket ids 0/1/2 = head/medium/tail from the *training* labels (or None); aux: split means of the
    model's aux losses (e.g. ``energy``).
    """

    labels: np.ndarray
    scores: np.ndarray
    num_classes: int
    meta: pd.DataFrame | None = None
    buckets: np.ndarray | None = None
    aux: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if self.scores.ndim != 2 or self.scores.shape[0] != self.labels.shape[0]:
            raise ValueError(f"scores {self.scores.shape} do not match labels {self.labels.shape}")
        self.preds = self.scores.argmax(axis=1) if len(self.labels) else np.zeros(0, dtype=np.int64)

    @property
    def correct(self) -> np.ndarray:
        return self.preds == self.labels

    def __len__(self) -> int:
        return len(self.labels)


class Metric:
    """Base class of metrics: ``name``, ``direction``, ``columns`` and :meth:`compute`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    direction: ClassVar[Literal["max", "min"]] = "max"
    kind: ClassVar[str] = "predictions"
    columns: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def output_columns(cls) -> tuple[str, ...]:
        return cls.columns or (cls.name,)

    def compute(self, ctx: EvalContext) -> dict[str, float]:  # pragma: no cover - interface
        raise NotImplementedError(f"{type(self).__name__} must implement compute()")


@dataclass
class ModelContext:
    """What a model-cost metric sees: a model, the shapes of its inputs and where to measure.

    ``model``: a :class:`~fusionzoo.train.model.FusionModel` (weights of a trained run: a MoE head's
    routing, and so its cost, depends on them); token counts are per sample (``text_tokens``: the mean
    text length of the test split); ``batch_size``: the training batch size; ``threads``: CPU threads
    the timings run with. ``batch(size)`` builds a seeded random batch of those shapes on ``device``;
    ``cache`` lets metrics share work within one measurement.
    """

    model: Any
    image_tokens: int
    text_tokens: int
    image_dim: int
    text_dim: int
    num_classes: int
    batch_size: int
    device: Any = "cpu"
    threads: int = 1
    cache: dict[str, Any] = field(default_factory=dict)

    def batch(self, size: int) -> dict[str, Any]:
        from fusionzoo.metrics._flops import synthetic_batch

        batch = synthetic_batch(
            size, self.image_tokens, self.image_dim, self.text_tokens, self.text_dim, self.num_classes
        )
        return {k: v.to(self.device) for k, v in batch.items()}


@dataclass
class CurveContext:
    """What a robustness summary sees: one run's curve and the reference fusion's mean curve.

    ``levels`` (K,) ascending, ``values`` (K,) the run's metric at each level (level 0 = clean);
    ``reference`` (K,) the reference fusion's mean curve at the same levels (or None); ``label`` the
    protocol's short name, used in the column name (``rel_robust_<label>``).
    """

    levels: np.ndarray
    values: np.ndarray
    label: str
    reference: np.ndarray | None = None


def accuracy_on(mask: np.ndarray, correct: np.ndarray) -> float:
    """Accuracy on the rows of ``mask``; NaN when it selects none."""
    return float(correct[mask].mean()) if mask.any() else float("nan")


def metrics_of_kind(kind: str) -> list[Metric]:
    """One instance of every registered metric of ``kind``, in name order."""
    registry = REGISTRIES["metric"]
    out = []
    for name in registry.names():
        cls = registry.get(name).obj
        if getattr(cls, "kind", "predictions") == kind:
            out.append(registry.create(name))
    return out


def prediction_metrics() -> list[Metric]:
    """One instance of every registered prediction metric, in name order."""
    return metrics_of_kind("predictions")


def compute_metrics(ctx: EvalContext, metrics: list[Metric] | None = None) -> dict[str, float]:
    """Every metric's columns for one split, as one flat dict (NaN for every column of an empty split)."""
    out: dict[str, float] = {}
    for metric in metrics if metrics is not None else prediction_metrics():
        if len(ctx) == 0:
            out.update({c: float("nan") for c in metric.output_columns() if "*" not in c})
            continue
        values = metric.compute(ctx)
        out.update({str(k): float(v) for k, v in values.items()})
    return out


def metric_columns(kind: str | None = None) -> dict[str, str]:
    """``{column or pattern: direction}`` of every registered metric (of ``kind`` when given)."""
    registry = REGISTRIES["metric"]
    out: dict[str, str] = {}
    for name in registry.names():
        cls = registry.get(name).obj
        if kind is None or getattr(cls, "kind", "predictions") == kind:
            for column in cls.output_columns():
                out[column] = cls.direction
    return out


def column_direction(column: str, kind: str | None = None) -> str:
    """``max`` or ``min`` for a result column (``test_``/``val_`` prefixes allowed) of a metric (of
    ``kind`` when given); unknown → error."""
    bare = column.removeprefix("test_").removeprefix("val_")
    for pattern, direction in metric_columns(kind).items():
        if fnmatch.fnmatchcase(bare, pattern) and (pattern != "acc_geo_*" or len(bare) > len("acc_geo_")):
            return direction
    import difflib

    valid = sorted(metric_columns(kind))
    close = difflib.get_close_matches(bare, valid, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise RegistryError(
        f"no registered metric writes the column '{column}'{hint}; metrics: {', '.join(valid)}"
    )


def evaluate_predictions(
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    num_classes: int | None = None,
    buckets: np.ndarray | None = None,
    meta: pd.DataFrame | None = None,
    aux: dict[str, float] | None = None,
) -> dict[str, float]:
    """Every registered prediction metric of ``scores (N, C)`` against ``labels (N,)``, one flat dict.

    ``buckets``: from :func:`fusionzoo.metrics.class_buckets.class_buckets` (omit to skip the bucket
    metrics); ``meta``: N rows with ``geo`` and ``is_human`` (omit to skip those metrics).
    """
    scores = np.asarray(scores)
    ctx = EvalContext(
        labels, scores, int(num_classes or scores.shape[1]), meta=meta, buckets=buckets, aux=dict(aux or {})
    )
    return compute_metrics(ctx)
