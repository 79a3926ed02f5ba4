"""Seeds of one configuration trained together: :class:`SeedStackTrainer` (``train_seeds`` wraps it).

The configurations differ only in their seed. Their models become one :class:`StackedModel`
(:mod:`fusionzoo.train.stacked`): one forward, one backward and one AdamW step for all of them per
batch, one evaluation pass per epoch. What is each member's own, as in its run alone:

- **init**: built after ``seed_everything(seed)`` (bitwise the run's initial weights);
- **data order**: its own ``torch.Generator(seed)`` shuffles its batches (each member reads its own
  rows; a train-time protocol perturbs them with the member's generator);
- **random draws** (dropout, ...): the member's generator, positioned where the run's global generator
  stands after its init; the probe (:func:`~fusionzoo.train.stacked.stacking_problem`) checks they
  are the run's draws, else the group trains one run at a time;
- **gradient clipping**: the global norm of the member's own gradients;
- **early stopping, best weights, divergence**: per member (:class:`BestWeights` /
  :class:`EarlyStopping` on a view of the member). A member that stops or diverges is **frozen**: its
  gradients are zeroed and its weights restored after each optimiser step while the others go on;
- **test evaluation, checkpoint, diagnostics**: on the member's own :class:`FusionModel` holding its
  best weights, by the code a run alone uses.

So a member's metrics equal its run alone's up to floating-point reassociation (stacked matmuls, the
summed loss): ``tests/test_batched_seeds.py`` checks it for every registered fusion. The learning-rate
schedule is shared (same config), AdamW is element-wise, so the stacked step is each run's step.
``train_time`` of each member is its share of the group's wall time (wall / members).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fusionzoo.metrics.base import column_direction
from fusionzoo.metrics.class_buckets import class_buckets
from fusionzoo.protocols._train_time import with_train_protocol
from fusionzoo.train import distributed
from fusionzoo.train.calibration import calibration
from fusionzoo.train.callbacks import BestWeights, Callback, Checkpoint, EarlyStopping
from fusionzoo.train.config import RunConfig
from fusionzoo.train.diagnostics import ExtrasSummary
from fusionzoo.train.evaluation import eval_batches, evaluate, split_metrics
from fusionzoo.train.losses import LossComposer, class_weights_from_labels
from fusionzoo.train.model import FusionModel, count_parameters
from fusionzoo.train.optim import param_groups
from fusionzoo.train.stacked import INPUT_KEYS, PROBE_ROWS, StackedModel, Unbatchable, stacking_problem
from fusionzoo.train.trainer import (
    RunResult,
    _autocast,
    amp_settings,
    resolve_device,
    seed_everything,
    training_batches,
)

__all__ = ["SeedStackTrainer", "Unbatchable", "stack_refusal", "train_seeds"]


def stack_refusal(configs: list[RunConfig]) -> str | None:
    """Why ``configs`` cannot train as one stack before building anything (``None``: try it)."""
    if len(configs) < 2:
        return "a single seed"
    first = configs[0]
    if any(c.replace(seed=first.seed) != first for c in configs[1:]):
        raise ValueError("a seed group's configurations must differ only in their seed")
    if first.mode != "frozen":
        return "finetune mode (each run owns its encoders)"
    if distributed.current() is not None:
        return "DistributedDataParallel"
    device = resolve_device(first.device)
    if amp_settings(first, device)[1]:
        return "fp16 AMP (its loss scaler would skip a step for every member at once)"
    return None


def stack_padded(tensors: list[Tensor]) -> Tensor:
    """``torch.stack`` of per-member ``(B, L_i, ...)`` token batches or ``(B, L_i)`` masks, each
    zero-padded (``False`` for masks, as the data pads a batch) to the longest ``L_i``."""
    longest = max(t.shape[1] for t in tensors) if tensors[0].dim() > 1 else 0
    padded = []
    for t in tensors:
        if t.dim() > 1 and t.shape[1] < longest:
            t = torch.cat([t, t.new_zeros(t.shape[0], longest - t.shape[1], *t.shape[2:])], dim=1)
        padded.append(t)
    return torch.stack(padded)


@dataclass
class _Member:
    """One seed of the stack, shaped like a Trainer for the callbacks (model, config, data, stop)."""

    index: int
    config: RunConfig
    data: Any
    model: FusionModel
    loss_fn: LossComposer
    buckets: np.ndarray
    order: torch.Generator
    result: RunResult
    best: BestWeights
    callbacks: list[Callback]
    steps_per_epoch: int = 0
    stop: bool = False
    epochs_run: int = 0
    steps: int = 0
    active: bool = True
    error: BaseException | None = None
    sums: dict[str, Any] = field(default_factory=dict)


class SeedStackTrainer:
    """Train ``configs`` (one configuration, several seeds) as one stack; see the module docstring.

    Raises :class:`Unbatchable` from ``__init__`` when they cannot be stacked (nothing trained yet).
    """

    def __init__(
        self,
        configs: list[RunConfig],
        data: Any,
        checkpoint_dirs: list[str | Path | None] | None = None,
        progress: Any = None,
    ) -> None:
        self.started = time.perf_counter()
        reason = stack_refusal(configs)
        if reason:
            raise Unbatchable(reason)
        first = configs[0]
        self.config, self.data, self.emit = first, data, progress
        self.device = resolve_device(first.device)
        self.autocast_dtype, _ = amp_settings(first, self.device)
        models, generators = [], []
        for config in configs:
            seed_everything(config.seed)
            models.append(FusionModel.for_data(config, data).to(self.device))
            state = torch.get_rng_state()  # where the run's dropout draws start
            generators.append(torch.Generator().manual_seed(0))
            generators[-1].set_state(state)
        self.stack = StackedModel(models, generators)
        self.n_train = data.size("train")
        self.steps_per_epoch = len(training_batches(self.n_train, first.batch_size, None))
        dirs = checkpoint_dirs or [None] * len(configs)
        self.members = [self._member(i, c, models[i], dirs[i]) for i, c in enumerate(configs)]
        problem = self._probe()
        if problem:
            raise Unbatchable(problem)
        self.optimizer = self._optimizer()
        from fusionzoo.train.optim import make_scheduler

        self.scheduler = make_scheduler(self.optimizer, first, self.steps_per_epoch * first.epochs)
        self.frozen: dict[int, dict[str, Tensor]] = {}

    def _member(self, index: int, config: RunConfig, model: FusionModel, directory: Any) -> _Member:
        data = with_train_protocol(config, self.data)
        labels = data.labels("train")
        weights = class_weights_from_labels(labels, data.num_classes) if config.class_weighted else None
        aux = {**getattr(model.fusion, "aux_loss_weights", {}), **getattr(model.head, "aux_loss_weights", {})}
        best = BestWeights(config.metric, column_direction(config.metric))
        callbacks: list[Callback] = [best, EarlyStopping(best, config.patience)]
        if directory is not None:
            callbacks.append(Checkpoint(directory))
        result = RunResult(
            status="ok",
            config=config.to_dict(),
            fusion=model.fusion_name,
            head=model.head_name,
            params=count_parameters(model),
        )
        return _Member(
            index=index,
            config=config,
            data=data,
            model=model,
            loss_fn=LossComposer.from_config(config, weights, aux).to(self.device),
            buckets=class_buckets(labels, data.num_classes),
            order=torch.Generator().manual_seed(config.seed),
            result=result,
            best=best,
            callbacks=callbacks,
            steps_per_epoch=self.steps_per_epoch,
        )

    # ------------------------------------------------------------------------------------ set-up
    def _probe(self) -> str | None:
        """:func:`stacking_problem` on the first rows of the training split (contract checked too)."""
        rows = torch.arange(min(PROBE_ROWS, self.n_train))
        batch = self.data.batch("train", rows)
        inputs = {k: v.to(self.device) for k, v in batch.items() if k in INPUT_KEYS}
        labels = batch["label"].to(self.device)
        composer = self.members[0].loss_fn

        def loss(logits: Tensor, target: Tensor, aux: dict[str, Tensor]) -> Tensor:
            return composer(logits, target, aux)[0]

        with _autocast(self.device, self.autocast_dtype):
            return stacking_problem(self.stack, inputs, labels, loss)

    def _optimizer(self) -> torch.optim.Optimizer:
        """AdamW over the stacked parameters, grouped as a single run groups its own (weight decay)."""
        model = self.members[0].model
        names = {id(p): n for n, p in model.named_parameters()}
        groups = []
        for group in param_groups(model, self.config):
            stacked = [self.stack.params[names[id(p)]] for p in group["params"]]
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": stacked})
        config = self.config
        try:
            return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, fused=True)
        except (RuntimeError, TypeError, ValueError):
            return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, foreach=True)

    # ---------------------------------------------------------------------------------- training
    def _stacked_batch(
        self, epoch_batches: list[list[Tensor]], step: int
    ) -> tuple[dict[str, Tensor], list[Tensor]]:
        """The member-major inputs ``(S, B, ...)`` of ``step`` and each member's labels (a frozen member
        reads an active member's rows: its outputs are not used)."""
        own = {m.index: m.data.batch("train", epoch_batches[m.index][step]) for m in self.members if m.active}
        filler = next(iter(own.values()))
        batches = [own.get(m.index, filler) for m in self.members]
        keys = [k for k in INPUT_KEYS if batches[0].get(k) is not None]
        inputs = {k: stack_padded([b[k] for b in batches]).to(self.device) for k in keys}
        return inputs, [b["label"].to(self.device) for b in batches]

    def _train_epoch(self, epoch: int) -> None:
        self.stack.train(True)
        active = [m for m in self.members if m.active]
        for member in active:
            member.sums = {"_seen": 0.0}
        epoch_batches = [
            training_batches(self.n_train, m.config.batch_size, m.order) if m.active else []
            for m in self.members
        ]
        for step in range(self.steps_per_epoch):
            live = [m for m in self.members if m.active]
            if not live:
                return
            inputs, labels = self._stacked_batch(epoch_batches, step)
            with _autocast(self.device, self.autocast_dtype):
                logits, aux = self.stack.forward(inputs, batched_inputs=True)
            losses = [
                m.loss_fn(logits[m.index], labels[m.index], {k: v[m.index] for k, v in aux.items()})
                for m in live
            ]
            finite = torch.isfinite(torch.stack([loss for loss, _ in losses])).tolist()
            total = None
            for member, (loss, parts), ok in zip(live, losses, finite, strict=True):
                if not ok:
                    bad = ", ".join(f"{k}={v.item():.4g}" for k, v in parts.items())
                    member.result.status = "diverged"
                    member.result.error = (
                        f"loss became {loss.item()} at epoch {epoch}, step {step + 1} ({bad})"
                    )
                    self._freeze(member)
                    continue
                total = loss if total is None else total + loss
                size = len(labels[member.index])
                member.sums["_seen"] += size
                member.sums["loss"] = member.sums.get("loss", 0.0) + loss.detach() * size
                for name, value in parts.items():
                    member.sums[name] = member.sums.get(name, 0.0) + value * size
                member.steps += 1
            if total is not None:
                self._optimizer_step(total)
            if self.emit is not None:
                self.emit({"event": "step", "epoch": epoch, "epochs": self.config.epochs, "step": step + 1,
                           "steps": self.steps_per_epoch})  # fmt: skip

    def _optimizer_step(self, total: Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        grads = [p.grad for p in self.stack.params.values() if p.grad is not None]
        size = self.stack.size
        if self.config.grad_clip > 0 and grads:  # clip_grad_norm_ of each member's own gradients
            norms = torch.stack([g.reshape(size, -1).float().norm(dim=1) for g in grads], dim=1).norm(dim=1)
            coef = (self.config.grad_clip / (norms + 1e-6)).clamp(max=1.0)
            for g in grads:
                g.mul_(coef.view(size, *([1] * (g.dim() - 1))).to(g.dtype))
        for index in self.frozen:
            for g in grads:
                g[index].zero_()
        self.optimizer.step()
        self.scheduler.step()
        with torch.no_grad():
            for index, saved in self.frozen.items():
                for name, value in saved.items():
                    self.stack.params[name][index].copy_(value)

    def _freeze(self, member: _Member) -> None:
        """Stop training ``member``: its weights stay as they are now while the others go on."""
        member.active = False
        self.frozen[member.index] = {
            n: p[member.index].detach().clone() for n, p in self.stack.params.items()
        }

    # -------------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def _evaluate(self, split: str, members: list[_Member], phase: str) -> dict[int, dict[str, float]]:
        """Every member's metrics on ``split`` from one stacked pass (shared rows, eval mode). A member
        with non-finite logits is evaluated alone, whose :class:`NonFiniteOutputError` it keeps."""
        self.stack.train(False)
        logits_parts: list[Tensor] = []
        aux_sums: dict[str, Tensor] = {}
        rows = 0
        for indices in eval_batches(self.data.size(split), self.config.eval_batch_size):
            batch = self.data.batch(split, indices)
            inputs = {k: v.to(self.device) for k, v in batch.items() if k in INPUT_KEYS}
            with _autocast(self.device, self.autocast_dtype):
                logits, aux = self.stack.forward(inputs, batched_inputs=False)
            logits_parts.append(logits.float().cpu())
            size = len(indices)
            rows += size
            for name, value in aux.items():
                aux_sums[name] = aux_sums.get(name, 0.0) + value.detach().float().cpu() * size
        size = self.stack.size
        every = (
            torch.cat(logits_parts, dim=1) if logits_parts else torch.zeros(size, 0, self.data.num_classes)
        )
        finite = torch.isfinite(every).reshape(size, -1).all(dim=1).tolist()
        out: dict[int, dict[str, float]] = {}
        for member in members:
            if not finite[member.index]:
                self._fail_alone(member, split, phase)
                continue
            aux = {name: float(total[member.index]) / max(1, rows) for name, total in aux_sums.items()}
            out[member.index] = split_metrics(
                member.data, split, every[member.index].numpy(), aux, member.buckets
            )
        return out

    def _fail_alone(self, member: _Member, split: str, phase: str) -> None:
        model = self.stack.load_member(member.index)
        try:
            self._evaluate_alone(member, model, split, phase)
        except Exception as exc:  # noqa: BLE001 - the run alone raises NonFiniteOutputError: it fails
            member.error = exc
        else:  # pragma: no cover - the stacked pass and the run alone disagree
            member.error = RuntimeError(f"non-finite stacked logits on the {split} split ({phase})")
        self._freeze(member)

    def _evaluate_alone(
        self, member: _Member, model: FusionModel, split: str, phase: str, on_extras: Any = None
    ) -> tuple[dict[str, float], np.ndarray]:
        return evaluate(
            model,
            member.data,
            split,
            buckets=member.buckets,
            batch_size=self.config.eval_batch_size,
            device=self.device,
            autocast_dtype=self.autocast_dtype,
            phase=phase,
            on_extras=on_extras,
        )

    # --------------------------------------------------------------------------------------- fit
    def fit(self) -> list[RunResult | BaseException]:
        """Train, restore each member's best weights, test each; a member that failed is its exception."""
        config = self.config
        if self.emit is not None:
            self.emit(
                {
                    "event": "start",
                    "epoch": 0,
                    "epochs": config.epochs,
                    "step": 0,
                    "steps": self.steps_per_epoch,
                }
            )
        for epoch in range(1, config.epochs + 1):
            if not any(m.active for m in self.members):
                break
            epoch_start = time.perf_counter()
            self._train_epoch(epoch)
            live = [m for m in self.members if m.active]
            metrics = self._evaluate("val", live, f"epoch {epoch}")
            lr = float(self.scheduler.get_last_lr()[0])
            for member in live:
                if member.index not in metrics:
                    continue
                seen = member.sums.pop("_seen")
                record: dict[str, float] = {"epoch": float(epoch), "lr": lr}
                record.update({f"train_{k}": float(v) / max(1, seen) for k, v in member.sums.items()})
                record.update({f"val_{k}": v for k, v in metrics[member.index].items()})
                record["epoch_time"] = time.perf_counter() - epoch_start
                member.result.history.append(record)
                member.epochs_run = member.result.epochs_run = epoch
                self.stack.load_member(member.index)
                for callback in member.callbacks:
                    callback.on_epoch_end(member, epoch, record)  # type: ignore[arg-type]
                if member.stop:
                    member.result.stopped_early = True
                    self._freeze(member)
            self._emit_epoch(epoch, [m for m in live if m.index in metrics])
        results = [self._finish(member) for member in self.members]
        share = (time.perf_counter() - self.started) / len(self.members)
        for result in results:
            if isinstance(result, RunResult):
                result.train_time = share
        return results

    def _emit_epoch(self, epoch: int, members: list[_Member]) -> None:
        if self.emit is None or not members:
            return
        metric = self.config.metric
        rows = [m.result.history[-1] for m in members]
        self.emit({
            "event": "epoch", "epoch": epoch, "epochs": self.config.epochs, "step": self.steps_per_epoch,
            "steps": self.steps_per_epoch, "metric": metric,
            "loss": float(np.mean([r.get("train_loss", float("nan")) for r in rows])),
            "val": float(np.mean([r.get(f"val_{metric}", float("nan")) for r in rows])),
        })  # fmt: skip

    def _finish(self, member: _Member) -> RunResult | BaseException:
        if member.error is not None:
            return member.error
        result = member.result
        result.steps = member.steps
        if result.status == "ok":
            if member.best.state is None:  # every validation was NaN: the last weights
                self.stack.load_member(member.index)
            member.best.restore(member)  # type: ignore[arg-type]
            result.best_epoch, result.val_metrics = member.best.best_epoch, member.best.best_val
            extras = ExtrasSummary()
            try:
                test_metrics, logits = self._evaluate_alone(
                    member, member.model, "test", f"weights of the best epoch {result.best_epoch}", extras.add
                )
            except Exception as exc:  # noqa: BLE001 - as the run alone: the run fails
                return exc
            result.metrics = test_metrics
            result.diagnostics = extras.rows()
            try:  # temperature scaling on validation, as the run alone (train/calibration.py)
                _, val_logits = self._evaluate_alone(member, member.model, "val", "temperature scaling")
            except Exception as exc:  # noqa: BLE001 - as the run alone: the run fails
                return exc
            scaled, rows = calibration(
                val_logits, member.data.labels("val"), logits, member.data.labels("test")
            )
            result.metrics.update(scaled)
            result.diagnostics += rows
            result.test_predictions = logits.argmax(axis=1) if len(logits) else np.zeros(0, dtype=np.int64)
            result.test_labels = member.data.labels("test")
        for callback in member.callbacks:
            callback.on_fit_end(member, result)  # type: ignore[arg-type]
        return result


def train_seeds(
    configs: list[RunConfig],
    data: Any,
    checkpoint_dirs: list[str | Path | None] | None = None,
    progress: Any = None,
) -> list[RunResult | BaseException]:
    """Train the seeds of one configuration as one stack (see the module docstring); raises
    :class:`Unbatchable` (before training anything) when they cannot be, with the reason."""
    return SeedStackTrainer(configs, data, checkpoint_dirs, progress).fit()
