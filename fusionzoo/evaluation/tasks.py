"""One evaluation task: a run's checkpoint predicting one variant of its test split under protocols.

``fusionzoo eval`` cuts its work into :class:`EvalSpec` tasks and hands them to a launcher (the local
one, the ``--jobs N`` process pool, Ray ...) exactly like the bench's training runs: the task
(:class:`~fusionzoo.launch.base.RunTask`) calls :meth:`EvalSpec.execute`, which runs :func:`execute_eval`
and returns its :class:`~fusionzoo.launch.base.RunRecord` whose ``tables["robustness"]`` holds the
rows; the driver (:mod:`fusionzoo.evaluation.runner`) writes them.

A task's data (``spec.dataset``, a key the driver's ``data_for`` resolves) is either the run's clean
features — for every token protocol and every level 0 — or, for a raw protocol at a level > 0, the
features whose test split was re-encoded under that perturbation (encoded by the driver, once, into the
feature cache, so workers only memory-map it). The checkpoint is read from its folder (shared storage)
or travels with the task (:meth:`EvalSpec.portable`); it is an *input*: ``checkpoint_dir`` of the task
is ``None``, so no launcher ever deletes or rewrites it.

Every number is computed as the trainer computed the clean test metrics (same batches, same class
buckets, same seeded perturbation per (protocol, level)), so a task gives the same rows in any process.
The linear-probe floor is evaluated the same way: its checkpoint holds the fitted probe
(:mod:`fusionzoo.baselines.probe_model`), which pools each perturbed token batch and scores it.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusionzoo.evaluation.tables import EVAL_SEMANTICS, eval_fingerprint_of
from fusionzoo.protocols.base import Protocol, generator_for

__all__ = ["EvalSpec", "PerturbedTest", "execute_eval", "load_model", "row_fingerprint", "test_metrics"]


class PerturbedTest:
    """The run's data with its test batches perturbed by ``protocol`` at ``level``."""

    def __init__(self, data: Any, protocol: Protocol, level: float) -> None:
        self._data, self.protocol, self.level = data, protocol, level
        self.generator = generator_for(protocol.canonical, "test")  # the same at every level: nested

    def __getattr__(self, name: str) -> Any:
        return getattr(self._data, name)

    def batch(self, split: str, indices: torch.Tensor) -> dict[str, Any]:
        batch = self._data.batch(split, indices)
        return self.protocol.apply(batch, self.level, self.generator) if split == "test" else batch


def test_metrics(
    model: Any, data: Any, batch_size: int, buckets: np.ndarray, device: torch.device
) -> dict[str, float]:
    """Every prediction metric of ``model`` on the test split of ``data`` (``test_<metric>``)."""
    from fusionzoo.metrics.base import evaluate_predictions
    from fusionzoo.train.trainer import predict

    logits = predict(model, data, "test", batch_size=batch_size, device=device)
    metrics = evaluate_predictions(
        data.labels("test"), logits, num_classes=data.num_classes, buckets=buckets, meta=data.meta("test")
    )
    return {f"test_{k}": float(v) for k, v in metrics.items()}


def row_fingerprint(run_id: str, canonical: str, level: float, eval_batch_size: int) -> str:
    """The ``eval_fingerprint`` of one robustness row (what makes it reusable)."""
    return eval_fingerprint_of(run_id, f"{canonical}|batch={eval_batch_size}", level)


@dataclass(frozen=True)
class EvalSpec:
    """What one evaluation task does; the launchers read ``run_id``, ``label``, ``dataset``, ``config``.

    ``run``: the run's identity columns (run_id, config_id, dataset, fusion, head, seed);
    ``protocols``: ``(canonical spec, levels)`` pairs evaluated on the data ``dataset`` names;
    ``checkpoint``: the run's checkpoint folder; ``checkpoint_files``: its files, when they travel
    with the task (no shared storage); ``device``: where the model predicts.
    """

    run: dict[str, Any]
    config: Any  # fusionzoo.train.config.RunConfig
    dataset: str  # the data key (clean features, or one raw variant)
    variant: str  # "clean" or "<protocol> @ <level>", for labels and the task id
    protocols: tuple[tuple[str, tuple[float, ...]], ...]
    checkpoint: str
    device: str = "cpu"
    checkpoint_files: dict[str, bytes] | None = None
    kind: str = "eval"

    @property
    def run_id(self) -> str:
        """The task's id (unique per task: a run has one task per data variant)."""
        return f"eval:{self.run['run_id']}:{self.variant}"

    @property
    def label(self) -> str:
        where = "" if self.variant == "clean" else f" · {self.variant}"
        return f"{self.run['fusion']} + {self.run['head']} · seed {self.run['seed']}{where}"

    @property
    def levels(self) -> int:
        return sum(len(levels) for _, levels in self.protocols)

    def identity_columns(self) -> dict[str, Any]:
        return {**self.run, "task": self.run_id}

    def input_files(self) -> list[str]:
        """Files every worker must see (shared storage) unless they travel with the task."""
        return [] if self.checkpoint_files is not None else [str(Path(self.checkpoint) / "model.safetensors")]

    def portable(self) -> EvalSpec:
        """This task with its checkpoint files inside (for workers without the runs directory)."""
        from fusionzoo.launch.transport import folder_files

        return dataclasses.replace(self, checkpoint_files=folder_files(Path(self.checkpoint)))

    def execute(self, data: Any, checkpoint_dir: Any, progress: Any = None) -> Any:
        """What this spec's task runs (:class:`~fusionzoo.launch.base.RunTask`): :func:`execute_eval`."""
        return execute_eval(self, data, progress)


_FITTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # data -> {canonical: fitted protocol}


def _fitted(canonical: str, data: Any) -> Protocol:
    """The protocol of ``canonical``, fitted on ``data`` once per process (token statistics)."""
    from fusionzoo import registry

    try:
        cache = _FITTED.setdefault(data, {})
    except TypeError:  # data that cannot be weakly referenced: fit every time
        cache = {}
    if canonical not in cache:
        protocol = registry.create("protocol", canonical)
        if protocol.target == "tokens":
            protocol.fit(data)
        cache[canonical] = protocol
    return cache[canonical]


def load_model(directory: Path, device: str) -> Any:
    """The model of a checkpoint folder: a trained FusionModel, or the linear-probe floor's
    :class:`~fusionzoo.baselines.probe_model.ProbeModel` (both predict token batches the same way)."""
    from fusionzoo.baselines.probe_model import is_probe_checkpoint, load_probe
    from fusionzoo.train.checkpoint import load_checkpoint

    if is_probe_checkpoint(directory):
        return load_probe(directory, device=device)
    model, _, _ = load_checkpoint(directory, device=device)
    return model


def _load_model(spec: EvalSpec, device: str) -> Any:
    if spec.checkpoint_files is None:
        return load_model(Path(spec.checkpoint), device)
    from fusionzoo.launch.transport import write_folder

    with tempfile.TemporaryDirectory(prefix="fusionzoo-eval-ckpt-") as tmp:
        write_folder(Path(tmp) / "checkpoint", spec.checkpoint_files)
        return load_model(Path(tmp) / "checkpoint", device)


def robustness_row(spec: EvalSpec, protocol: Protocol, level: float) -> dict[str, Any]:
    """The identity part of one robustness row."""
    config = spec.config
    return {
        **{k: spec.run[k] for k in ("run_id", "config_id", "dataset", "fusion", "head", "seed")},
        "protocol": protocol.canonical,
        "protocol_name": protocol.registry_name,
        "stage": "test",
        "level": float(level),
        "train_protocol": getattr(config, "train_protocol", ""),
        "eval_batch_size": int(config.eval_batch_size),
        "eval_semantics": EVAL_SEMANTICS,
        "eval_fingerprint": row_fingerprint(
            str(spec.run["run_id"]), protocol.canonical, level, int(config.eval_batch_size)
        ),
    }


def execute_eval(spec: EvalSpec, data: Any, progress: Callable[[dict[str, Any]], None] | None) -> Any:
    """Evaluate ``spec`` on ``data``; the record's ``tables["robustness"]`` holds one row per level.

    The token protocols are fitted on ``data``'s training split (a raw variant's train split is the
    clean one). Exceptions propagate: the task (:class:`~fusionzoo.launch.base.RunTask`) records them.
    """
    from fusionzoo.launch.base import RunRecord
    from fusionzoo.metrics.class_buckets import class_buckets
    from fusionzoo.protocols._train_time import with_train_protocol

    started = time.perf_counter()
    device = torch.device(spec.device)
    model = _load_model(spec, spec.device)
    model.to(device).eval()
    config = spec.config
    train_labels = with_train_protocol(config, data).labels("train")  # as the trainer's buckets
    buckets = class_buckets(train_labels, data.num_classes)
    rows = []
    for canonical, levels in spec.protocols:
        protocol = _fitted(canonical, data)
        for level in levels:
            if progress is not None:
                what = "" if protocol.needs_raw else f" · {protocol.label} @ {level:g}"  # raw: in the label
                progress({"event": "eval", "description": f"{spec.label}{what}"})
            view = data if level == 0 or protocol.needs_raw else PerturbedTest(data, protocol, level)
            row = robustness_row(spec, protocol, level)
            row.update(test_metrics(model, view, int(config.eval_batch_size), buckets, device))
            rows.append(row)
    row = {**spec.identity_columns(), "kind": "eval", "status": "ok", "error": "", "checkpoint": ""}
    seconds = time.perf_counter() - started
    return RunRecord(spec, row, seconds=seconds, tables={"robustness": rows})
