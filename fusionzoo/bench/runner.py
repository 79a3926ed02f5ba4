"""The benchmark grid: datasets × fusions × heads × seeds, run one by one, resumable, failure-isolated.

- :func:`build_grid` expands a :class:`~fusionzoo.bench.config.BenchConfig` into :class:`RunSpec` s,
  seed-major (every configuration's seed 0 first, so an interrupted grid already has a comparable
  leaderboard), without duplicates.
- :func:`run_grid` skips runs already finished in the runs directory (status ok or diverged), redoes
  failed runs and runs that never finished (killed mid-way: no row was written), records every run
  atomically as soon as it ends, and keeps going when a run raises (status ``failed`` with the error
  and a traceback summary). ``KeyboardInterrupt`` removes the current run's partial checkpoint and
  propagates: nothing of that run is recorded, so a rerun redoes it.
"""

from __future__ import annotations

import math
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fusionzoo import registry
from fusionzoo.bench.config import UNIMODAL, BenchConfig
from fusionzoo.bench.results import FINISHED, ResultsStore, run_id_of
from fusionzoo.train.config import RunConfig
from fusionzoo.train.data import TrainingData
from fusionzoo.train.trainer import RunResult, train_run

__all__ = ["GridOutcome", "RunSpec", "build_grid", "estimate_seconds", "result_row", "run_grid"]

DataProvider = Callable[[str], TrainingData]


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid: a dataset and a complete RunConfig (fusion, resolved head, seed)."""

    dataset: str
    config: RunConfig

    @property
    def fusion(self) -> str:
        return self.config.fusion

    @property
    def head(self) -> str:
        return self.config.head or self.config.resolved_head()

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def config_hash(self) -> str:
        return self.config.config_hash()

    @property
    def run_id(self) -> str:
        return run_id_of(self.dataset, self.fusion, self.head, self.seed, self.config_hash)

    @property
    def label(self) -> str:
        return f"{self.fusion} + {self.head} · seed {self.seed}" + (
            f" · {self.dataset}" if self.dataset != "synth" else ""
        )


def _canonical(kind: str, spec: str, defaults: dict[str, dict[str, Any]] | None = None) -> str:
    name, kwargs = registry.parse_spec(spec)
    registry.get_entry(kind, name)  # unknown name -> RegistryError listing the valid ones
    kwargs = {**(defaults or {}).get(name, {}), **kwargs}  # the preset's options, unless the spec sets them
    return registry.format_spec(name, kwargs)


def build_grid(bench: BenchConfig, base: RunConfig | None = None) -> list[RunSpec]:
    """Expand the grid. Heads: ``bench.heads`` for every fusion, else each fusion's natural head."""
    base = base or bench.run_config()
    # "fusion@head" pins a head for that fusion (e.g. "fluid@mlp" in the Table 3 preset)
    pairs: list[tuple[str, str | None]] = []
    for item in bench.fusions:
        fusion, _, pinned = item.partition("@")
        pairs.append(
            (
                _canonical("fusion", fusion, bench.fusion_options),
                _canonical("head", pinned) if pinned else None,
            )
        )
    if bench.with_unimodal:
        present = {registry.parse_spec(f)[0] for f, _ in pairs}
        pairs += [(u, None) for u in UNIMODAL if u not in present and u in registry.list_fusions()]
    heads = [_canonical("head", h) for h in bench.heads]
    specs: list[RunSpec] = []
    seen: set[str] = set()
    for dataset in bench.datasets:
        for seed in bench.seeds:
            for fusion, pinned in pairs:
                for head in [pinned] if pinned else heads or [None]:
                    config = base.replace(fusion=fusion, head=head, seed=int(seed))
                    config = config.replace(head=_canonical("head", config.resolved_head()))
                    spec = RunSpec(dataset, config)
                    if spec.run_id not in seen:
                        seen.add(spec.run_id)
                        specs.append(spec)
    return specs


def result_row(
    spec: RunSpec,
    result: RunResult | None,
    data: TrainingData | None,
    error: str = "",
    tb: str = "",
    elapsed: float = float("nan"),
) -> dict[str, Any]:
    """The results-table row of a finished (``result``) or failed (``error``) run."""
    row: dict[str, Any] = {
        "run_id": spec.run_id,
        "dataset": spec.dataset,
        "fusion": spec.fusion,
        "head": spec.head,
        "seed": int(spec.seed),
        "config_hash": spec.config_hash,
        "mode": spec.config.mode,
        "config": spec.config.to_json(),
        "dataset_fingerprint": str(getattr(data, "fingerprint", "") or ""),
        "status": "failed" if result is None else result.status,
        "error": error if result is None else result.error,
        "traceback": tb,
        "train_time": elapsed if result is None else float(result.train_time),
        "params": 0 if result is None else int(result.params),
        "best_epoch": 0 if result is None else int(result.best_epoch),
        "epochs_run": 0 if result is None else int(result.epochs_run),
        "stopped_early": False if result is None else bool(result.stopped_early),
        "steps": 0 if result is None else int(result.steps),
        "checkpoint": "" if result is None else result.checkpoint,
    }
    if result is not None:
        row.update({f"test_{k}": float(v) for k, v in result.metrics.items()})
        row.update({f"val_{k}": float(v) for k, v in result.val_metrics.items()})
    return row


def _traceback_summary(exc: BaseException, frames: int = 6) -> str:
    """The last ``frames`` frames and the exception line, compact enough for a table cell."""
    summary = traceback.extract_tb(exc.__traceback__)[-frames:]
    lines = [f"{f.filename}:{f.lineno} in {f.name}: {(f.line or '').strip()}" for f in summary]
    lines.append(f"{type(exc).__name__}: {exc}")
    return "\n".join(lines)


@dataclass
class GridOutcome:
    """What :func:`run_grid` did."""

    specs: list[RunSpec]
    skipped: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    seconds: float = 0.0


class _RunProgress:
    """Adapts ``train_run``'s progress events to a transient rich task."""

    def __init__(self, progress: Any, spec: RunSpec, metric: str) -> None:
        self.progress, self.spec, self.metric = progress, spec, metric
        self.task = None
        self.status = ""

    def __call__(self, event: dict[str, Any]) -> None:
        if self.progress is None:
            return
        epochs, steps = int(event["epochs"]), max(1, int(event["steps"]))
        if self.task is None:
            self.task = self.progress.add_task(f"  {self.spec.label}", total=epochs * steps)
        done = (int(event["epoch"]) - 1) * steps + int(event["step"]) if event["event"] != "start" else 0
        if event["event"] == "epoch":
            val = event.get("val", float("nan"))
            name = "acc" if event.get("metric") == "accuracy" else "F1"
            self.status = f" · epoch {event['epoch']}/{epochs} loss {event['loss']:.3f} val {name} {val:.3f}"
        self.progress.update(self.task, completed=done, description=f"  {self.spec.label}{self.status}")

    def close(self) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None


def run_grid(
    specs: list[RunSpec],
    store: ResultsStore,
    data_for: DataProvider,
    *,
    progress: Any = None,
    console: Any = None,
    keep_checkpoints: bool = True,
) -> GridOutcome:
    """Run every spec not yet finished in ``store``; see the module docstring."""
    started = time.perf_counter()
    outcome = GridOutcome(specs=specs)
    finished = store.finished_ids()
    todo = [s for s in specs if s.run_id not in finished]
    outcome.skipped = [s.run_id for s in specs if s.run_id in finished]
    say = console.print if console is not None else (lambda *a, **k: None)
    if outcome.skipped:
        say(
            f"[dim]resume: {len(outcome.skipped)} of {len(specs)} runs already finished in {store.dir}, skipped[/dim]"
        )
    grid_task = progress.add_task("grid", total=len(todo)) if progress is not None else None
    for spec in todo:
        data = data_for(spec.dataset)
        checkpoint = store.checkpoint_dir(spec.run_id)
        shutil.rmtree(checkpoint, ignore_errors=True)
        reporter = _RunProgress(progress, spec, spec.config.metric)
        run_started = time.perf_counter()
        try:
            result = train_run(
                spec.config, data, progress=reporter, checkpoint_dir=checkpoint if keep_checkpoints else None
            )
        except KeyboardInterrupt:
            reporter.close()
            shutil.rmtree(checkpoint, ignore_errors=True)
            raise
        except Exception as exc:  # a broken plugin must not stop the grid
            reporter.close()
            shutil.rmtree(checkpoint, ignore_errors=True)
            message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
            row = result_row(
                spec,
                None,
                data,
                error=message,
                tb=_traceback_summary(exc),
                elapsed=time.perf_counter() - run_started,
            )
            store.record(row, history=[])
            outcome.failed.append(spec.run_id)
            say(f"[red]failed[/red] {spec.label}: {message}")
        else:
            reporter.close()
            store.record(
                result_row(spec, result, data),
                history=result.history,
                predictions=result.test_predictions,
                labels=result.test_labels,
            )
            if result.status == "diverged":
                outcome.diverged.append(spec.run_id)
                say(f"[yellow]diverged[/yellow] {spec.label}: {result.error}")
            else:
                metric = result.metrics.get("accuracy", float("nan"))
                say(
                    f"[green]done[/green] {spec.label}: test acc {metric:.4f}, macro-F1 "
                    f"{result.metrics.get('macro_f1', float('nan')):.4f} ({result.train_time:.1f} s)"
                )
        outcome.ran.append(spec.run_id)
        if grid_task is not None:
            progress.advance(grid_task)
    outcome.seconds = time.perf_counter() - started
    return outcome


def estimate_seconds(
    spec: RunSpec, store: ResultsStore | None, shapes: dict[str, int] | None, flops_per_second: float | None
) -> float:
    """Expected train time of ``spec``: the mean of earlier runs of the same configuration in ``store``,
    else FLOPs of a training step × steps ÷ ``flops_per_second`` (needs the data ``shapes``), else NaN.
    """
    if store is not None:
        frame = store.load()
        if len(frame):
            same = frame[
                (frame["dataset"] == spec.dataset)
                & (frame["fusion"] == spec.fusion)
                & (frame["head"] == spec.head)
                & frame["status"].isin(FINISHED)
            ]
            exact = same[same["config_hash"] == spec.config_hash]
            pick = exact if len(exact) else same
            if len(pick):
                return float(pick["train_time"].astype(float).mean())
    if not shapes or not flops_per_second:
        return float("nan")
    from fusionzoo.bench.flops import synthetic_batch, train_step_flops
    from fusionzoo.train.model import FusionModel

    batch_size = min(spec.config.batch_size, shapes["n_train"])
    model = FusionModel.from_config(
        spec.config,
        image_dim=shapes["image_dim"],
        text_dim=shapes["text_dim"],
        num_classes=shapes["num_classes"],
        num_image_tokens=shapes["image_tokens"],
    )
    batch = synthetic_batch(
        batch_size,
        shapes["image_tokens"],
        shapes["image_dim"],
        shapes["text_tokens"],
        shapes["text_dim"],
        shapes["num_classes"],
    )
    flops = train_step_flops(model, batch)
    steps = math.ceil(shapes["n_train"] / batch_size) * spec.config.epochs
    eval_rows = shapes.get("n_val", 0) * spec.config.epochs + shapes.get("n_test", 0)
    total = flops * steps + flops / 3 * eval_rows / batch_size
    # small models run far below the matmul peak; 0.2 of peak is what the quick preset achieves on CPU
    return float(total / (0.2 * flops_per_second))
