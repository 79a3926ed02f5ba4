"""Trainer callbacks: what happens around the training loop, each one small object.

    class Callback:
        on_fit_start(trainer)                    before the first epoch
        on_step(trainer, epoch, step, steps)     after each optimiser step
        on_epoch_end(trainer, epoch, record)     after each validation (record: the history row);
                                                 may raise (the tuner's pruning) or set trainer.stop
        on_fit_end(trainer, result)              after the test evaluation of the best weights

Built in: :class:`BestWeights` (always on: keeps a copy of the whole model at the best validation
score and restores it before testing), :class:`EarlyStopping`, :class:`Checkpoint` (writes the best
model), :class:`Progress` (events for a progress bar) and :class:`EpochHook` (a plain
``f(epoch, val_metrics)``, e.g. Optuna's report/prune).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fusionzoo.train.trainer import RunResult, Trainer

__all__ = ["BestWeights", "Callback", "Checkpoint", "EarlyStopping", "EpochHook", "Progress"]


class Callback:
    """No-op base class; override the hooks you need."""

    def on_fit_start(self, trainer: Trainer) -> None:
        pass

    def on_step(self, trainer: Trainer, epoch: int, step: int, steps: int) -> None:
        pass

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, float]) -> None:
        pass

    def on_fit_end(self, trainer: Trainer, result: RunResult) -> None:
        pass


class BestWeights(Callback):
    """Track the best validation ``metric`` (direction from the metric registry) and snapshot the whole
    model then; :meth:`restore` loads that snapshot (the last weights when no score was finite)."""

    def __init__(self, metric: str, direction: str = "max") -> None:
        self.metric = metric
        self.sign = 1.0 if direction == "max" else -1.0
        self.best_score = -math.inf
        self.best_epoch = 0
        self.best_val: dict[str, float] = {}
        self.since_best = 0
        self.state: dict[str, Any] | None = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, float]) -> None:
        score = self.sign * record.get(f"val_{self.metric}", float("nan"))
        if not math.isnan(score) and score > self.best_score:
            self.best_score, self.since_best = score, 0
            self.state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
            self.best_epoch = epoch
            self.best_val = {k[4:]: v for k, v in record.items() if k.startswith("val_")}
        else:
            self.since_best += 1

    def restore(self, trainer: Trainer) -> None:
        if self.state is None:  # every validation was NaN (e.g. an empty val split): keep the last weights
            self.best_epoch = trainer.epochs_run
            return
        trainer.model.load_state_dict(self.state)


class EarlyStopping(Callback):
    """Stop after ``patience`` epochs without a new best validation score (0 = never)."""

    def __init__(self, best: BestWeights, patience: int) -> None:
        self.best, self.patience = best, patience

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, float]) -> None:
        if self.patience and self.best.since_best >= self.patience and epoch < trainer.config.epochs:
            trainer.stop = True


class Checkpoint(Callback):
    """Write the best model (``model.safetensors`` + ``config.json``) into ``directory`` at the end."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def on_fit_end(self, trainer: Trainer, result: RunResult) -> None:
        if result.status != "ok":
            return
        from fusionzoo.train.checkpoint import save_checkpoint

        model, data = trainer.model, trainer.data
        info = {
            "model": {
                "fusion": model.fusion_name,
                "head": model.head_name,
                "image_dim": data.image_dim,
                "text_dim": data.text_dim,
                "num_image_tokens": data.num_image_tokens,
                "num_classes": data.num_classes,
                "encoder": model.encoder is not None,
                "image_prefix_tokens": model.prefix_tokens["image"],
                "text_prefix_tokens": model.prefix_tokens["text"],
            },
            "classes": list(data.classes),
            "dataset": getattr(data, "name", ""),
            "dataset_fingerprint": getattr(data, "fingerprint", ""),
            "best_epoch": result.best_epoch,
            "val_metrics": result.val_metrics,
            "test_metrics": result.metrics,
        }
        result.checkpoint = str(save_checkpoint(self.directory, model.cpu(), trainer.config, info))


class Progress(Callback):
    """Forward ``{"event": "start"|"step"|"epoch", "epoch", "epochs", "step", "steps", ["loss", "val",
    "metric"]}`` dicts to ``emit`` (a progress display)."""

    def __init__(self, emit: Callable[[dict[str, Any]], None]) -> None:
        self.emit = emit

    def on_fit_start(self, trainer: Trainer) -> None:
        epochs, steps = trainer.config.epochs, trainer.steps_per_epoch
        self.emit({"event": "start", "epoch": 0, "epochs": epochs, "step": 0, "steps": steps})

    def on_step(self, trainer: Trainer, epoch: int, step: int, steps: int) -> None:
        self.emit(
            {"event": "step", "epoch": epoch, "epochs": trainer.config.epochs, "step": step, "steps": steps}
        )

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, float]) -> None:
        metric = trainer.config.metric
        steps = trainer.steps_per_epoch
        self.emit(
            {
                "event": "epoch",
                "epoch": epoch,
                "epochs": trainer.config.epochs,
                "step": steps,
                "steps": steps,
                "loss": record.get("train_loss", float("nan")),
                "val": record.get(f"val_{metric}", float("nan")),
                "metric": metric,
            }
        )


class EpochHook(Callback):
    """Call ``hook(epoch, val_metrics)`` after each validation; whatever it raises propagates."""

    def __init__(self, hook: Callable[[int, dict[str, float]], None]) -> None:
        self.hook = hook

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, float]) -> None:
        self.hook(epoch, {k[4:]: v for k, v in record.items() if k.startswith("val_")})
