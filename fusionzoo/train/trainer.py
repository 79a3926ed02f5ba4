"""One training run: ``Trainer(config, data, callbacks).fit() -> RunResult`` (``train_run`` wraps it).

AdamW with warm-up + cosine decay (:mod:`fusionzoo.train.optim`), global gradient-norm clipping,
AMP (bf16, else fp16 with a grad scaler) on CUDA only, validation after every epoch, the best
validation weights of the *whole* model (encoder included in finetune mode) restored for the final
test metrics, and callbacks for everything around the loop (:mod:`fusionzoo.train.callbacks`: early
stopping, checkpointing, progress, the tuner's per-epoch report).

Failure semantics (what the bench runner relies on):
- a NaN/inf training loss stops the run and returns ``status="diverged"`` (no test metrics);
- the first training batch is checked against the ``(B,·,D)`` contract; a violation raises
  :class:`fusionzoo.testing.ContractError` naming the plugin and the rule;
- NaN/inf logits during evaluation raise :class:`~fusionzoo.train.evaluation.NonFiniteOutputError`
  naming the plugin that produced them and the phase ("fusion 'x' produced NaN logits during
  evaluation (val split, epoch 3)");
- any other exception, and anything a callback raises (e.g. ``optuna.TrialPruned``), propagates.

Determinism: ``config.seed`` seeds the parameter init, the data order (a dedicated generator) and
dropout; two runs with the same seed on CPU produce identical metrics, whatever ran before them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fusionzoo.metrics.base import column_direction
from fusionzoo.metrics.class_buckets import class_buckets
from fusionzoo.protocols._train_time import with_train_protocol
from fusionzoo.train import distributed
from fusionzoo.train.callbacks import BestWeights, Callback, Checkpoint, EarlyStopping, EpochHook, Progress
from fusionzoo.train.checkpoint import load_checkpoint, save_checkpoint
from fusionzoo.train.config import RunConfig
from fusionzoo.train.diagnostics import ExtrasSummary
from fusionzoo.train.evaluation import ExtrasCallback, NonFiniteOutputError, evaluate, predict, to_device
from fusionzoo.train.hooks import training_hooks
from fusionzoo.train.inputs import TrainingData
from fusionzoo.train.losses import LossComposer, class_weights_from_labels
from fusionzoo.train.model import FusionModel, count_parameters
from fusionzoo.train.optim import make_optimizer, make_scheduler

__all__ = [
    "NonFiniteOutputError",
    "RunResult",
    "Trainer",
    "evaluate",
    "load_checkpoint",
    "predict",
    "resolve_device",
    "save_checkpoint",
    "train_run",
]

EpochCallback = Callable[[int, dict[str, float]], None]
ProgressCallback = Callable[[dict[str, Any]], None]


@dataclass
class RunResult:
    """Outcome of one run. ``metrics``/``val_metrics`` are the test/val metrics of the best epoch."""

    status: str  # "ok" | "diverged"
    config: dict[str, Any]
    fusion: str
    head: str
    metrics: dict[str, float] = field(default_factory=dict)
    val_metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    epochs_run: int = 0
    stopped_early: bool = False
    params: int = 0
    train_time: float = 0.0
    steps: int = 0
    error: str = ""
    checkpoint: str = ""
    test_predictions: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    diagnostics: list[dict[str, Any]] = field(default_factory=list)  # fusionzoo.train.diagnostics rows


# ------------------------------------------------------------------------------------------- helpers
def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA if available, else CPU; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available; use --device cpu")
    return device


def amp_settings(config: RunConfig, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use a grad scaler). AMP only ever runs on CUDA."""
    if device.type != "cuda" or config.amp == "off":
        return None, False
    if config.amp == "bf16" or (config.amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16, False
    return torch.float16, True


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def training_batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[Tensor]:
    """Shuffled index batches of one epoch; a final batch of one is dropped (it breaks in-batch
    contrastive losses). Evaluation never drops rows (:func:`eval_batches`)."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    chunks = list(order.split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) < 2:
        chunks.pop()
    return chunks


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


# ------------------------------------------------------------------------------------------- trainer
class Trainer:
    """Fit one :class:`RunConfig` on ``data``; see the module docstring.

    The model (encoder included in finetune mode) is built fresh from the config and the data in
    ``__init__``, after seeding, so a trainer never shares weights with another run.
    """

    def __init__(
        self, config: RunConfig, data: TrainingData, callbacks: list[Callback] | None = None
    ) -> None:
        self.started = time.perf_counter()
        self.config, self.data = config, with_train_protocol(config, data)
        self.group = (
            distributed.current()
        )  # None: one process (the usual case); else DDP (train/distributed.py)
        self.device = resolve_device(config.device)
        self.autocast_dtype, use_scaler = amp_settings(config, self.device)
        seed_everything(config.seed)
        self.model = FusionModel.for_data(config, data).to(self.device)
        self.params = count_parameters(self.model)
        self.step_model = distributed.wrap(self.model, self.device) if self.group else None

        train_labels = self.data.labels("train")  # the labels the run trains on (noisy under label_noise)
        self.buckets = class_buckets(train_labels, data.num_classes)
        class_weights = (
            class_weights_from_labels(train_labels, data.num_classes) if config.class_weighted else None
        )
        aux_defaults = {  # default λ the fusion and head declare for their aux losses
            **getattr(self.model.fusion, "aux_loss_weights", {}),
            **getattr(self.model.head, "aux_loss_weights", {}),
        }
        self.loss_fn = LossComposer.from_config(config, class_weights, aux_defaults).to(self.device)
        self.hooks = training_hooks(config, self)  # a training protocol's (ogm_ge, gblend), distillation's

        self.n_train = data.size("train")
        self.steps_per_epoch = len(self._batches(0, None))
        extra = [hook.module for hook in self.hooks if hook.module is not None]  # e.g. G-Blend's heads
        self.optimizer = make_optimizer(
            self.model, config, extra=torch.nn.ModuleList(extra) if extra else None
        )
        self.scheduler = make_scheduler(self.optimizer, config, self.steps_per_epoch * config.epochs)
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        self.all_params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.order_generator = torch.Generator().manual_seed(config.seed)

        self.best = BestWeights(config.metric, column_direction(config.metric))
        self.callbacks: list[Callback] = [self.best, *(callbacks or [])]
        self.callbacks[1:1] = self.hooks
        self.callbacks.append(EarlyStopping(self.best, config.patience))
        self.stop = False
        self.epochs_run = 0
        self.step = 0

    def _fire(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def _batches(self, epoch: int, generator: torch.Generator | None) -> list[Tensor]:
        if self.group is not None:
            return distributed.rank_batches(
                self.n_train, self.config.batch_size, self.config.seed, epoch, self.group
            )
        return training_batches(self.n_train, self.config.batch_size, generator)

    def evaluate(
        self, split: str, phase: str | None = None, on_extras: ExtrasCallback | None = None
    ) -> tuple[dict[str, float], np.ndarray]:
        evaluate_split = (
            evaluate if self.group is None else partial(distributed.evaluate_sharded, group=self.group)
        )
        return evaluate_split(
            self.model,
            self.data,
            split,
            buckets=self.buckets,
            batch_size=self.config.eval_batch_size,
            device=self.device,
            autocast_dtype=self.autocast_dtype,
            phase=phase,
            on_extras=on_extras,
        )

    def _train_epoch(self, epoch: int, result: RunResult) -> dict[str, Tensor | float] | None:
        """One pass over the training split; the summed losses, or ``None`` when the loss diverged."""
        self.model.train()
        sums: dict[str, Tensor | float] = {}
        seen = 0
        checked = self.step > 0
        batches = self._batches(epoch, self.order_generator)
        for batch_index, indices in enumerate(batches):
            batch = to_device(self.data.batch("train", indices), self.device)
            with _autocast(self.device, self.autocast_dtype):
                if self.step_model is None:
                    out = self.model.forward_batch(batch, check=not checked)
                else:
                    out = self.step_model(batch, not checked)
            checked = True
            loss, parts = self.loss_fn(out.logits, batch["label"], out.aux_losses)
            for hook in self.hooks:
                loss, parts = hook.loss(batch, out, loss, parts)
            finite = (
                bool(torch.isfinite(loss)) if self.group is None else distributed.all_finite(loss, self.group)
            )
            if not finite:
                bad = ", ".join(f"{k}={v.item():.4g}" for k, v in parts.items())
                result.status = "diverged"
                result.error = f"loss became {loss.item()} at epoch {epoch}, step {batch_index + 1} ({bad})"
                return None
            self._optimizer_step(loss)
            self.step += 1
            size = len(indices)
            seen += size
            sums["loss"] = sums.get("loss", 0.0) + loss.detach() * size
            for name, value in parts.items():
                sums[name] = sums.get(name, 0.0) + value * size
            self._fire("on_step", epoch, batch_index + 1, self.steps_per_epoch)
        sums["_seen"] = float(seen)
        if self.group is not None:  # the history row: every rank's rows
            sums = distributed.all_reduce_sums(sums, self.group, self.device)
        return sums

    def _optimizer_step(self, loss: Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        for hook in self.hooks:
            hook.after_backward()
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.all_params, self.config.grad_clip, foreach=True)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()

    def fit(self) -> RunResult:
        """Train, restore the best weights, test; see the module docstring."""
        config = self.config
        result = RunResult(
            status="ok",
            config=config.to_dict(),
            fusion=self.model.fusion_name,
            head=self.model.head_name,
            params=self.params,
        )
        self._fire("on_fit_start")
        for epoch in range(1, config.epochs + 1):
            epoch_start = time.perf_counter()
            sums = self._train_epoch(epoch, result)
            if sums is None:
                break
            seen = sums.pop("_seen")
            val_metrics, _ = self.evaluate("val", f"epoch {epoch}")
            record: dict[str, float] = {"epoch": float(epoch), "lr": float(self.scheduler.get_last_lr()[0])}
            record.update({f"train_{k}": float(v) / max(1, seen) for k, v in sums.items()})
            record.update({f"val_{k}": v for k, v in val_metrics.items()})
            record["epoch_time"] = time.perf_counter() - epoch_start
            result.history.append(record)
            self.epochs_run = result.epochs_run = epoch
            self._fire("on_epoch_end", epoch, record)
            if self.stop:
                result.stopped_early = True
                break
        result.steps = self.step
        if result.status == "ok":
            self.best.restore(self)
            result.best_epoch, result.val_metrics = self.best.best_epoch, self.best.best_val
            extras = ExtrasSummary()  # diagnostics of the test split (gates, expert counts)
            test_metrics, logits = self.evaluate(
                "test", f"weights of the best epoch {result.best_epoch}", on_extras=extras.add
            )
            result.metrics = test_metrics
            result.diagnostics = extras.rows()
            if self.group is None:  # temperature scaling on validation (train/calibration.py)
                from fusionzoo.train.calibration import calibration

                _, val_logits = self.evaluate("val", "temperature scaling")
                scaled, rows = calibration(
                    val_logits, self.data.labels("val"), logits, self.data.labels("test")
                )
                result.metrics.update(scaled)
                result.diagnostics += rows
            result.test_predictions = logits.argmax(axis=1) if len(logits) else np.zeros(0, dtype=np.int64)
            result.test_labels = self.data.labels("test")
        self._fire("on_fit_end", result)
        result.train_time = time.perf_counter() - self.started
        return result


def train_run(
    config: RunConfig,
    data: TrainingData,
    on_epoch: EpochCallback | None = None,
    progress: ProgressCallback | None = None,
    checkpoint_dir: str | Path | None = None,
) -> RunResult:
    """Train ``config`` on ``data`` with the usual callbacks.

    ``on_epoch(epoch, val_metrics)`` runs after each validation (1-based epoch) and may raise.
    ``progress(event)`` gets ``{"event": "start"|"step"|"epoch", "epoch", "epochs", "step", "steps",
    "loss", "val"}`` dicts (``loss``/``val`` on epoch events) for a progress display.
    """
    callbacks: list[Callback] = []
    main = distributed.is_main()  # under DDP only rank 0 shows progress and writes the checkpoint
    if progress is not None and main:
        callbacks.append(Progress(progress))
    if on_epoch is not None:
        callbacks.append(EpochHook(on_epoch))
    if checkpoint_dir is not None and main:
        callbacks.append(Checkpoint(checkpoint_dir))
    return Trainer(config, data, callbacks).fit()
