"""``fusionzoo eval``: evaluate the saved checkpoints of finished runs under protocols; measure cost.

For each finished (``ok``) run of a runs directory:

1. its data is rebuilt from ``inputs/<data_fingerprint>.json`` (written by the bench) and checked
   against the run's fingerprint (a changed dataset or encoder is refused, not silently evaluated);
   the features come from the cache (nothing is re-encoded unless a raw protocol needs it);
2. for every protocol and level whose row is not in ``robustness.parquet`` yet (``eval_fingerprint``:
   run, canonical protocol spec, level, eval batch size, :data:`~fusionzoo.evaluation.tables.EVAL_SEMANTICS`),
   the checkpoint (best weights) predicts the perturbed test split and every prediction metric is
   computed, exactly as the trainer computed the clean test metrics (same batches, same class buckets),
   so level 0 reproduces the run's clean ``test_*`` columns;
3. each (run, protocol) is recorded when all its levels are done; an evaluation killed at any moment
   keeps what was recorded and a rerun evaluates only what is missing;
4. with ``efficiency``, every efficiency metric (``kind = "model"``) is measured once per efficiency key
   (:data:`~fusionzoo.evaluation.tables.EFFICIENCY_KEY`) on the checkpoint of one of its runs.

Token protocols perturb the cached tokens of the test batches (frozen runs only); raw protocols
(``needs_raw``) are re-encoded through :mod:`fusionzoo.evaluation.raw`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from fusionzoo.evaluation.tables import EVAL_SEMANTICS, EvalTables, efficiency_key_of, eval_fingerprint_of
from fusionzoo.protocols.base import Protocol, generator_for

__all__ = ["EvalOutcome", "evaluate_runs", "measure_efficiency", "protocol_curve"]


@dataclass
class EvalOutcome:
    """What :func:`evaluate_runs` did."""

    rows: int = 0  # robustness rows written
    reused: int = 0  # robustness rows already there
    efficiency: int = 0  # efficiency keys measured
    efficiency_reused: int = 0
    runs: int = 0  # runs considered
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


class _PerturbedTest:
    """The run's data with its test batches perturbed by ``protocol`` at ``level``."""

    def __init__(self, data: Any, protocol: Protocol, level: float) -> None:
        self._data, self.protocol, self.level = data, protocol, level
        self.generator = generator_for(protocol.canonical, "test")  # the same at every level: nested

    def __getattr__(self, name: str) -> Any:
        return getattr(self._data, name)

    def batch(self, split: str, indices: torch.Tensor) -> dict[str, Any]:
        batch = self._data.batch(split, indices)
        return self.protocol.apply(batch, self.level, self.generator) if split == "test" else batch


def _test_metrics(
    model: Any, data: Any, config: Any, buckets: np.ndarray, device: torch.device
) -> dict[str, float]:
    from fusionzoo.metrics.base import evaluate_predictions
    from fusionzoo.train.trainer import predict

    logits = predict(model, data, "test", batch_size=config.eval_batch_size, device=device)
    labels = data.labels("test")
    metrics = evaluate_predictions(
        labels, logits, num_classes=data.num_classes, buckets=buckets, meta=data.meta("test")
    )
    return {f"test_{k}": float(v) for k, v in metrics.items()}


def protocol_curve(
    model: Any, data: Any, protocol: Protocol, *, batch_size: int = 512, device: str = "cpu"
) -> dict[float, dict[str, float]]:
    """``{level: test metrics}`` of ``model`` on ``data`` under a token protocol (fitted on ``data``),
    computed as ``fusionzoo eval`` does (same seeding and batching; class buckets of the training labels)."""
    from types import SimpleNamespace

    from fusionzoo.metrics.class_buckets import class_buckets

    if protocol.needs_raw:
        raise ValueError(f"protocol '{protocol.registry_name}' needs raw inputs: use fusionzoo eval")
    protocol.fit(data)
    buckets = class_buckets(data.labels("train"), data.num_classes)
    config = SimpleNamespace(eval_batch_size=batch_size)
    out = {}
    for level in protocol.levels():
        perturbed = data if level == 0 else _PerturbedTest(data, protocol, level)
        out[float(level)] = _test_metrics(model, perturbed, config, buckets, torch.device(device))
    return out


class _Group:
    """One data fingerprint: its resolved inputs, training data and the raw-protocol features."""

    def __init__(self, inputs: Any, data: Any, console: Any, progress: bool) -> None:
        self.inputs, self.data, self.console, self.progress = inputs, data, console, progress
        self.shapes = data_shapes(data)
        self.raw: dict[tuple[str, float], Any] = {}
        self.fitted: set[str] = set()

    def fit(self, protocol: Protocol) -> None:
        if protocol.canonical not in self.fitted and protocol.target == "tokens":
            protocol.fit(self.data)
            self.fitted.add(protocol.canonical)

    def data_at(self, protocol: Protocol, level: float) -> Any:
        """The data whose test split is ``protocol`` at ``level``."""
        if level == 0:
            return self.data
        if not protocol.needs_raw:
            return _PerturbedTest(self.data, protocol, level)
        key = (protocol.canonical, float(level))
        if key not in self.raw:
            from fusionzoo.evaluation.raw import perturbed_test_features
            from fusionzoo.train.inputs import FeatureData

            test = perturbed_test_features(
                self.inputs, protocol, level, console=self.console, progress=self.progress
            )
            d = self.data
            self.raw[key] = FeatureData(
                d.train, d.val, test, num_classes=d.num_classes, classes=d.classes, name=d.name,
                fingerprint=d.fingerprint,
            )  # fmt: skip
        return self.raw[key]


def _robustness_row(
    run: pd.Series, protocol: Protocol, level: float, config: Any, fingerprint: str
) -> dict[str, Any]:
    return {
        "run_id": str(run["run_id"]),
        "config_id": str(run["config_id"]),
        "dataset": str(run["dataset"]),
        "fusion": str(run["fusion"]),
        "head": str(run["head"]),
        "seed": int(run["seed"]),
        "protocol": protocol.canonical,
        "protocol_name": protocol.registry_name,
        "stage": "test",
        "level": float(level),
        "train_protocol": getattr(config, "train_protocol", ""),
        "eval_batch_size": int(config.eval_batch_size),
        "eval_semantics": EVAL_SEMANTICS,
        "eval_fingerprint": fingerprint,
    }


def _fingerprint(run_id: str, protocol: Protocol, level: float, config: Any) -> str:
    return eval_fingerprint_of(run_id, f"{protocol.canonical}|batch={config.eval_batch_size}", level)


def data_shapes(data: Any) -> dict[str, int]:
    """Token counts and dims of a frozen run's data (text: the test split's mean length, rounded)."""
    lengths = data.split("test").text_lengths()
    return {
        "image_tokens": int(data.num_image_tokens),
        "text_tokens": max(1, int(round(float(np.mean(lengths))))) if len(lengths) else 1,
        "image_dim": int(data.image_dim),
        "text_dim": int(data.text_dim),
        "num_classes": int(data.num_classes),
    }


def efficiency_parts(run: Any, config: Any, shapes: dict[str, int], device: str) -> dict[str, Any]:
    """The efficiency key columns of ``run`` (a results row) on ``device`` (``cpu`` | ``cuda``)."""
    return {
        "fusion": str(run["fusion"]),
        "head": str(run["head"]),
        "dim": int(config.dim),
        **{
            k: int(shapes[k]) for k in ("image_tokens", "text_tokens", "image_dim", "text_dim", "num_classes")
        },
        "batch_size": int(config.batch_size),
        "device": str(device),
    }


def measure_efficiency(
    model: Any, parts: dict[str, Any], device: torch.device, threads: int
) -> dict[str, Any]:
    """Every ``kind = "model"`` metric of ``model`` at the shapes of ``parts`` (one efficiency row)."""
    from fusionzoo.metrics.base import ModelContext, metrics_of_kind

    ctx = ModelContext(
        model=model,
        image_tokens=parts["image_tokens"],
        text_tokens=parts["text_tokens"],
        image_dim=parts["image_dim"],
        text_dim=parts["text_dim"],
        num_classes=parts["num_classes"],
        batch_size=parts["batch_size"],
        device=device,
        threads=threads,
    )
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        row: dict[str, Any] = {**parts, "efficiency_key": efficiency_key_of(parts)}
        for metric in metrics_of_kind("model"):
            row.update({k: float(v) for k, v in metric.compute(ctx).items()})
    finally:
        torch.set_num_threads(before)
    row.update(threads=int(threads), torch_version=torch.__version__)
    return row


def evaluate_runs(
    store: Any,
    protocols: list[Protocol],
    *,
    efficiency: bool = False,
    device: str = "cpu",
    threads: int = 1,
    console: Any = None,
    progress: bool = True,
    options_for: Callable[[str, str], Any] | None = None,
    run_ids: set[str] | None = None,
) -> EvalOutcome:
    """Evaluate the finished runs of ``store`` (see the module docstring).

    ``options_for(dataset, fingerprint)`` gives the DataOptions of runs whose inputs were not recorded
    (e.g. from the command line's config); ``run_ids`` restricts the evaluation to those runs.
    """
    from rich.console import Console

    from fusionzoo.train.config import RunConfig
    from fusionzoo.train.trainer import resolve_device

    console = console or Console(stderr=True)
    started = time.perf_counter()
    outcome = EvalOutcome()
    tables = EvalTables(store)
    torch_device = resolve_device(device)
    runs = store.load()
    runs = runs[runs["status"] == "ok"] if len(runs) else runs
    if run_ids is not None and len(runs):
        runs = runs[runs["run_id"].astype(str).isin(run_ids)]
    done = tables.done_fingerprints()
    done_keys = tables.done_efficiency_keys()
    outcome.runs = len(runs)

    work: dict[str, list[tuple[pd.Series, Any, list[tuple[Protocol, list[float]]]]]] = {}
    for _, run in runs.iterrows():
        config = RunConfig.from_json(run["config"])
        todo = []
        for protocol in protocols:
            levels = [
                lv
                for lv in protocol.levels()
                if _fingerprint(run["run_id"], protocol, lv, config) not in done
            ]
            outcome.reused += len(protocol.levels()) - len(levels)
            if levels:
                todo.append((protocol, levels))
        if todo or efficiency:
            work.setdefault(str(run["data_fingerprint"]), []).append((run, config, todo))

    total = sum(len(levels) for items in work.values() for _, _, todo in items for _, levels in todo)
    bar = _Bar(progress, console, total)
    with bar:
        for fingerprint, items in work.items():
            group = _open_group(store, fingerprint, items[0][0], options_for, console, progress, outcome)
            if group is None:
                bar.advance(sum(len(lv) for _, _, todo in items for _, lv in todo))
                continue
            for run, config, todo in items:
                _evaluate_run(store, tables, group, run, config, todo, torch_device, bar, outcome)
                if efficiency:
                    _efficiency_of_run(
                        store, group, run, config, torch_device, threads, tables, done_keys, outcome
                    )
    outcome.seconds = time.perf_counter() - started
    return outcome


def _open_group(
    store: Any,
    fingerprint: str,
    run: pd.Series,
    options_for: Any,
    console: Any,
    progress: bool,
    outcome: EvalOutcome,
) -> _Group | None:
    from fusionzoo.evaluation.inputs import load_inputs
    from fusionzoo.prepare import PrepareError, materialise, resolve_inputs

    dataset = str(run["dataset"])
    options = load_inputs(store.dir, fingerprint)
    if options is None and options_for is not None:
        options = options_for(dataset, fingerprint)
    if options is None:
        outcome.problems.append(
            f"{dataset} (data fingerprint {fingerprint}): the runs directory does not record these runs' inputs "
            "(trained by an older fusionzoo); pass the bench's --config/--data-dir/--data-option flags to eval"
        )
        return None
    try:
        inputs = resolve_inputs(options)
    except PrepareError as exc:
        outcome.problems.append(f"{dataset}: {exc}")
        return None
    if inputs.fingerprint != fingerprint:
        outcome.problems.append(
            f"{dataset}: the data changed since these runs were trained (fingerprint {inputs.fingerprint}, the "
            f"runs' {fingerprint}: dataset files, options or encoders differ); their checkpoints are not "
            "evaluated on other data. Retrain them with fusionzoo bench."
        )
        return None
    if options.mode != "frozen":
        outcome.problems.append(
            f"{dataset}: finetune runs are not evaluated (protocols perturb cached tokens)"
        )
        return None
    from fusionzoo.evaluation.inputs import record_inputs, record_shapes

    console.print(f"[bold]eval[/bold]: {dataset} features (fingerprint {fingerprint})")
    data = materialise(inputs, console=console, progress=progress)
    group = _Group(inputs, data, console, progress)
    record_inputs(store.dir, options, fingerprint)
    record_shapes(store.dir, fingerprint, group.shapes)
    return group


def _evaluate_run(
    store: Any,
    tables: EvalTables,
    group: _Group,
    run: pd.Series,
    config: Any,
    todo: list,
    device: Any,
    bar: Any,
    outcome: EvalOutcome,
) -> None:
    from fusionzoo.evaluation.train_time import with_train_protocol
    from fusionzoo.metrics.class_buckets import class_buckets
    from fusionzoo.train.checkpoint import load_checkpoint

    if not todo:
        return
    checkpoint = store.checkpoint_dir(str(run["run_id"]))
    if not (checkpoint / "model.safetensors").exists():
        outcome.problems.append(
            f"{run['fusion']} + {run['head']} seed {run['seed']}: no checkpoint in {checkpoint}"
        )
        bar.advance(sum(len(levels) for _, levels in todo))
        return
    model, _, _ = load_checkpoint(checkpoint, device=str(device))
    model.to(device).eval()
    train_labels = with_train_protocol(config, group.data).labels("train")  # as the trainer's buckets
    buckets = class_buckets(train_labels, group.data.num_classes)
    for protocol, levels in todo:
        group.fit(protocol)
        rows = []
        for level in levels:
            bar.describe(f"{run['fusion']} · seed {run['seed']} · {protocol.label} @ {level:g}")
            data = group.data_at(protocol, level)
            fingerprint = _fingerprint(run["run_id"], protocol, level, config)
            row = _robustness_row(run, protocol, level, config, fingerprint)
            row.update(_test_metrics(model, data, config, buckets, device))
            rows.append(row)
            bar.advance(1)
        tables.record_robustness(rows)
        outcome.rows += len(rows)


def _efficiency_of_run(
    store: Any, group: _Group, run: pd.Series, config: Any, device: Any, threads: int, tables: EvalTables,
    done_keys: set[str], outcome: EvalOutcome,
) -> None:  # fmt: skip
    from fusionzoo.train.checkpoint import load_checkpoint

    parts = efficiency_parts(run, config, group.shapes, device.type)
    key = efficiency_key_of(parts)
    if key in done_keys:
        outcome.efficiency_reused += 1
        return
    checkpoint = store.checkpoint_dir(str(run["run_id"]))
    if not (checkpoint / "model.safetensors").exists():
        return
    model, _, _ = load_checkpoint(checkpoint, device=str(device))
    group.console.print(
        f"[bold]efficiency[/bold]: {run['fusion']} + {run['head']} (D={config.dim}, {device.type})"
    )
    tables.record_efficiency(measure_efficiency(model.to(device), parts, device, threads))
    done_keys.add(key)
    outcome.efficiency += 1


class _Bar:
    """A rich progress bar over the (run, protocol, level) items, or nothing."""

    def __init__(self, enabled: bool, console: Any, total: int) -> None:
        self.enabled, self.console, self.total = enabled and total > 0, console, total
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> _Bar:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), console=self.console,
            )  # fmt: skip
            self.progress.__enter__()
            self.task = self.progress.add_task("eval", total=self.total)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def describe(self, text: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=f"eval {text}")

    def advance(self, count: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, count)
