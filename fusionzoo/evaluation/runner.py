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

from fusionzoo import registry
from fusionzoo.evaluation.tables import EvalTables, efficiency_key_of
from fusionzoo.evaluation.tasks import EvalSpec, PerturbedTest, row_fingerprint, test_metrics
from fusionzoo.launch.base import RunTask
from fusionzoo.protocols.base import Protocol

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


def protocol_curve(
    model: Any, data: Any, protocol: Protocol, *, batch_size: int = 512, device: str = "cpu"
) -> dict[float, dict[str, float]]:
    """``{level: test metrics}`` of ``model`` on ``data`` under a token protocol (fitted on ``data``),
    computed as ``fusionzoo eval`` does (same seeding and batching; class buckets of the training labels)."""
    from fusionzoo.metrics.class_buckets import class_buckets

    if protocol.needs_raw:
        raise ValueError(f"protocol '{protocol.registry_name}' needs raw inputs: use fusionzoo eval")
    protocol.fit(data)
    buckets = class_buckets(data.labels("train"), data.num_classes)
    out = {}
    for level in protocol.test_levels():
        perturbed = data if level == 0 else PerturbedTest(data, protocol, level)
        out[float(level)] = test_metrics(model, perturbed, batch_size, buckets, torch.device(device))
    return out


class _Group:
    """One data fingerprint: its resolved inputs, clean features and the raw-protocol variants."""

    def __init__(self, inputs: Any, data: Any, console: Any, progress: bool) -> None:
        self.inputs, self.data, self.console, self.progress = inputs, data, console, progress
        self.shapes = data_shapes(data)
        self.raw: dict[tuple[str, float], Any] = {}

    def raw_data(self, protocol: Protocol, level: float) -> Any:
        """The features whose test split is the raw ``protocol`` at ``level`` (encoded once, cached)."""
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


def _fingerprint(run_id: str, protocol: Protocol, level: float, config: Any) -> str:
    return row_fingerprint(run_id, protocol.canonical, level, int(config.eval_batch_size))


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
    launcher_for: Callable[[int], Any] | None = None,
) -> EvalOutcome:
    """Evaluate the finished runs of ``store`` (see the module docstring).

    ``options_for(dataset, fingerprint)`` gives the DataOptions of runs whose inputs were not recorded
    (e.g. from the command line's config); ``run_ids`` restricts the evaluation to those runs;
    ``launcher_for(number of tasks)`` gives the launcher that runs the evaluation tasks (default:
    this process), ``threads`` threads each. Efficiency is measured
    afterwards in this process, alone (timings of concurrent work would not be honest).
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
    outcome.runs = len(runs)

    work: dict[str, list[tuple[pd.Series, Any, list[tuple[Protocol, list[float]]]]]] = {}
    for _, run in runs.iterrows():
        config = RunConfig.from_json(run["config"])
        todo = []
        for protocol in protocols:
            levels = [
                lv
                for lv in protocol.test_levels()
                if _fingerprint(run["run_id"], protocol, lv, config) not in done
            ]
            outcome.reused += len(protocol.test_levels()) - len(levels)
            if levels:
                todo.append((protocol, levels))
        if todo or efficiency:
            work.setdefault(str(run["data_fingerprint"]), []).append((run, config, todo))

    groups: dict[str, _Group] = {}
    for fingerprint, items in work.items():
        group = _open_group(store, fingerprint, items[0][0], options_for, console, progress, outcome)
        if group is not None:
            groups[fingerprint] = group
    tasks, sources = _tasks(store, work, groups, torch_device, outcome)
    driver = _EvalDriver(tables, outcome, console)
    driver.expect(tasks)
    launcher = launcher_for(len(tasks)) if launcher_for is not None else registry.create("launcher", "local")
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))  # the thread count of every worker too: same numbers
    try:
        with _Bar(progress, console, sum(t.spec.levels for t in tasks)) as driver.bar:
            launcher.run(tasks, lambda key: _data_of(sources[key]), driver)
    finally:
        torch.set_num_threads(before)
    if efficiency:
        done_keys = tables.done_efficiency_keys()
        for fingerprint, items in work.items():
            if fingerprint in groups:
                for run, config, _ in items:
                    _efficiency_of_run(
                        store, groups[fingerprint], run, config, torch_device, threads, tables,
                        done_keys, outcome,
                    )  # fmt: skip
    outcome.seconds = time.perf_counter() - started
    return outcome


def _data_of(source: tuple[_Group, Protocol | None, float]) -> Any:
    group, protocol, level = source
    return group.data if protocol is None else group.raw_data(protocol, level)


def _tasks(
    store: Any, work: dict[str, list], groups: dict[str, _Group], device: Any, outcome: EvalOutcome
) -> tuple[list[RunTask], dict[str, tuple[_Group, Protocol | None, float]]]:
    """The evaluation tasks of ``work`` and ``{data key: (group, raw protocol, level)}``.

    Per run: one task on the clean features (every token protocol, every level 0), and one task per
    raw protocol and level > 0 (on that level's re-encoded test split)."""
    tasks: list[RunTask] = []
    sources: dict[str, tuple[_Group, Protocol | None, float]] = {}
    for fingerprint, items in work.items():
        if fingerprint not in groups:
            continue
        sources[fingerprint] = (groups[fingerprint], None, 0.0)
        for run, config, todo in items:
            if not todo:
                continue
            checkpoint = store.checkpoint_dir(str(run["run_id"])).resolve()
            if not (checkpoint / "model.safetensors").exists():
                outcome.problems.append(
                    f"{run['fusion']} + {run['head']} seed {run['seed']}: no checkpoint in {checkpoint}"
                )
                continue
            identity = {k: run[k] for k in ("run_id", "config_id", "dataset", "fusion", "head")}
            base = {"run": {**{k: str(v) for k, v in identity.items()}, "seed": int(run["seed"])},
                    "config": config, "checkpoint": str(checkpoint), "device": str(device)}  # fmt: skip
            clean = [
                (p.canonical, tuple(lv for lv in levels if lv == 0 or not p.needs_raw)) for p, levels in todo
            ]
            clean = tuple((c, lv) for c, lv in clean if lv)
            if clean:
                tasks.append(
                    RunTask(EvalSpec(dataset=fingerprint, variant="clean", protocols=clean, **base), None)
                )
            for protocol, levels in todo:
                for level in (lv for lv in levels if lv != 0 and protocol.needs_raw):
                    key = f"{fingerprint}|{protocol.canonical}|{float(level)!r}"
                    sources[key] = (groups[fingerprint], protocol, float(level))
                    variant = f"{protocol.label} @ {level:g}"
                    spec = EvalSpec(
                        dataset=key, variant=variant, protocols=((protocol.canonical, (level,)),), **base
                    )
                    tasks.append(RunTask(spec, None))
    return tasks, sources


class _EvalDriver:
    """Writes each (run, protocol)'s rows when all its levels are done, whichever task brought them."""

    def __init__(self, tables: EvalTables, outcome: EvalOutcome, console: Any) -> None:
        self.tables, self.outcome, self.console = tables, outcome, console
        self.bar: Any = None
        self.waiting: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.expected: dict[tuple[str, str], int] = {}

    def expect(self, tasks: list[RunTask]) -> None:
        for task in tasks:
            for canonical, levels in task.spec.protocols:
                key = (str(task.spec.run["run_id"]), canonical)
                self.expected[key] = self.expected.get(key, 0) + len(levels)

    def progress(self, task: RunTask, event: dict[str, Any]) -> None:
        if self.bar is not None and event.get("description"):  # one line per active task
            self.bar.show(task.spec.run_id, str(event["description"]))

    def note(self, message: str) -> None:
        self.console.print(message)

    def finished(self, record: Any) -> None:
        spec = record.spec
        if self.bar is not None:
            self.bar.hide(spec.run_id)
            self.bar.advance(spec.levels)
        if record.status != "ok":
            self.outcome.problems.append(f"{spec.label}: evaluation failed ({record.row.get('error', '')})")
            return
        complete: list[dict[str, Any]] = []
        for row in record.tables.get("robustness", []):
            key = (str(row["run_id"]), str(row["protocol"]))
            self.waiting.setdefault(key, []).append(row)
            if len(self.waiting[key]) == self.expected.get(key, 0):
                complete += self.waiting.pop(key)
        if complete:
            self.tables.record_robustness(complete)
            self.outcome.rows += len(complete)


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


def _efficiency_of_run(
    store: Any, group: _Group, run: pd.Series, config: Any, device: Any, threads: int, tables: EvalTables,
    done_keys: set[str], outcome: EvalOutcome,
) -> None:  # fmt: skip
    from fusionzoo.baselines.probe_model import is_probe_checkpoint
    from fusionzoo.train.checkpoint import load_checkpoint

    parts = efficiency_parts(run, config, group.shapes, device.type)
    key = efficiency_key_of(parts)
    if key in done_keys:
        outcome.efficiency_reused += 1
        return
    checkpoint = store.checkpoint_dir(str(run["run_id"]))
    if not (checkpoint / "model.safetensors").exists() or is_probe_checkpoint(checkpoint):
        return  # the linear probe is not a trained network: no FLOPs, latency or training-step memory
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
        self.lines: dict[str, Any] = {}  # active task -> its progress line

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

    def show(self, key: str, text: str) -> None:
        """A line for the active task ``key`` under the bar (added, or updated)."""
        if self.progress is None:
            return
        if key in self.lines:
            self.progress.update(self.lines[key], description=f"  {text}")
        else:
            self.lines[key] = self.progress.add_task(f"  {text}", total=None)

    def hide(self, key: str) -> None:
        if self.progress is not None and key in self.lines:
            self.progress.remove_task(self.lines.pop(key))

    def advance(self, count: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, count)
