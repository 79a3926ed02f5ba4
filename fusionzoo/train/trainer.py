"""One training run: ``train_run(config, data, on_epoch=None, progress=None) -> RunResult``.

AdamW (decoupled weight decay, not on biases, norms, embeddings or learnable queries:
:mod:`fusionzoo.train.optim`) with linear warm-up then cosine decay, global
gradient-norm clipping, AMP (bf16, else fp16 with a grad scaler) on CUDA only, validation after every
epoch, early stopping on ``config.metric`` (val macro-F1 or accuracy), and the final test metrics from
the best-validation weights. The best checkpoint is written as ``model.safetensors`` plus
``config.json`` (never pickle) when ``checkpoint_dir`` is given.

Failure semantics (what the bench runner relies on):
- a NaN/inf training loss stops the run and returns ``status="diverged"`` (no test metrics);
- the first training batch is checked against the ``(B,·,D)`` contract; a violation raises
  :class:`fusionzoo.testing.ContractError` naming the plugin and the rule;
- NaN/inf logits during evaluation raise :class:`NonFiniteOutputError` naming the plugin that
  produced them and the phase ("fusion 'x' produced NaN logits during evaluation (val split, epoch 3)");
- any other exception, and anything ``on_epoch`` raises (e.g. ``optuna.TrialPruned``), propagates.

Determinism: ``config.seed`` seeds the parameter init, the data order (a dedicated generator) and
dropout; two runs with the same seed on CPU produce identical metrics.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import Tensor, nn

from fusionzoo.train.config import RunConfig
from fusionzoo.train.data import TrainingData
from fusionzoo.train.losses import LossComposer, class_weights_from_labels
from fusionzoo.train.metrics import class_buckets, classification_metrics
from fusionzoo.train.model import FusionModel, count_parameters
from fusionzoo.train.optim import weight_decay_groups

__all__ = [
    "CHECKPOINT_CONFIG",
    "CHECKPOINT_WEIGHTS",
    "NonFiniteOutputError",
    "RunResult",
    "evaluate",
    "load_checkpoint",
    "resolve_device",
    "save_checkpoint",
    "train_run",
]

CHECKPOINT_WEIGHTS = "model.safetensors"
CHECKPOINT_CONFIG = "config.json"

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


# ------------------------------------------------------------------------------------------- helpers
def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA if available, else CPU; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available; use --device cpu")
    return device


def _amp_settings(config: RunConfig, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use a grad scaler). AMP only ever runs on CUDA."""
    if device.type != "cuda" or config.amp == "off":
        return None, False
    if config.amp == "bf16" or (config.amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16, False
    return torch.float16, True


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _param_groups(model: nn.Module, encoder: nn.Module | None, config: RunConfig) -> list[dict[str, Any]]:
    """The standard weight-decay split (:mod:`fusionzoo.train.optim`: no decay on biases, norms,
    embeddings, learnable queries); the finetuned encoder gets ``backbone_lr``."""
    groups: list[dict[str, Any]] = []
    for module, lr in ((model, config.lr), (encoder, config.backbone_lr)):
        if module is not None:
            groups.extend(weight_decay_groups(module, config.weight_decay, lr))
    return groups


def _make_optimizer(
    groups: list[dict[str, Any]], config: RunConfig, device: torch.device
) -> torch.optim.Optimizer:
    # fused AdamW: one kernel for all parameters (CPU and CUDA); falls back to foreach where unsupported
    try:
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def _lr_lambda(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[Tensor]:
    """Training batches: a final batch of one is dropped (it breaks in-batch contrastive losses)."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    chunks = list(order.split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) < 2:
        chunks.pop()
    return chunks


def _eval_batches(n: int, batch_size: int) -> list[Tensor]:
    """Evaluation batches: every row, in order (never drops a row)."""
    return list(torch.arange(n).split(batch_size))


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}


def _forward(
    model: FusionModel, encoder: nn.Module | None, batch: dict[str, Any], check: bool = False
) -> Any:
    if encoder is not None:
        batch = {**batch, **encoder(batch)}
    return model(batch["image"], batch["text"], batch.get("image_mask"), batch.get("text_mask"), check=check)


class NonFiniteOutputError(RuntimeError):
    """A plugin produced NaN/inf logits during evaluation; the message names the plugin and the phase."""


def _all_finite(values: Any) -> bool:
    tensors = values if isinstance(values, tuple | list) else (values,)
    return all(
        bool(torch.isfinite(t).all()) for t in tensors if isinstance(t, Tensor) and t.is_floating_point()
    )


def _nonfinite_error(
    model: FusionModel,
    encoder: nn.Module | None,
    batch: dict[str, Any],
    logits: Tensor,
    split: str,
    phase: str | None,
    rows: int,
) -> NonFiniteOutputError:
    """Re-run the offending batch with hooks to find which stage first produced a non-finite value."""
    seen: dict[str, bool] = {}

    def fusion_hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        seen["fusion_in"] = _all_finite(args)
        seen["fusion_out"] = _all_finite(getattr(output, "tokens", output))

    hooks = [model.fusion.register_forward_hook(fusion_hook)]
    try:
        _forward(model, encoder, batch)
    finally:
        for hook in hooks:
            hook.remove()
    kind = "NaN" if bool(torch.isnan(logits).any()) else "inf"
    fusion, head = model.fusion_name, model.head_name
    if not seen.get("fusion_in", True):
        culprit = f"the inputs of fusion '{fusion}' (encoder or projection outputs)"
    elif not seen.get("fusion_out", True):
        culprit = f"fusion '{fusion}'"
    else:
        culprit = f"head '{head}'"
    bad = int((~torch.isfinite(logits)).any(dim=1).sum())
    where = f"{split} split" + (f", {phase}" if phase else "")
    return NonFiniteOutputError(
        f"{culprit} produced {kind} logits during evaluation ({where}): {bad} of {rows} rows of one batch "
        "are not finite; check the plugin's eval-mode path (model.eval())"
    )


@torch.no_grad()
def _eval_pass(
    model: FusionModel,
    data: TrainingData,
    split: str,
    *,
    batch_size: int,
    device: torch.device | str,
    autocast_dtype: torch.dtype | None,
    phase: str | None,
) -> tuple[np.ndarray, dict[str, float]]:
    """(logits ``(N, C)``, sample-weighted mean of each aux loss over the split)."""
    device = torch.device(device)
    encoder = getattr(data, "encoder", None)
    model.eval()
    if encoder is not None:
        encoder.eval()
    outputs = []
    aux_sums: dict[str, float] = {}
    rows = 0
    for indices in _eval_batches(data.size(split), batch_size):
        batch = _to_device(data.batch(split, indices), device)
        context = (
            torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else nullcontext()
        )
        with context:
            out = _forward(model, encoder, batch)
        logits = out.logits.float()
        if not bool(torch.isfinite(logits).all()):
            with context:
                error = _nonfinite_error(model, encoder, batch, logits, split, phase, len(indices))
            raise error
        outputs.append(logits.cpu())
        size = len(indices)
        rows += size
        for name, value in out.aux_losses.items():
            aux_sums[name] = aux_sums.get(name, 0.0) + float(value.detach().float()) * size
    aux = {name: total / rows for name, total in aux_sums.items()}
    if not outputs:
        return np.zeros((0, model.num_classes), dtype=np.float32), aux
    return torch.cat(outputs).numpy(), aux


def predict(
    model: FusionModel,
    data: TrainingData,
    split: str,
    *,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    phase: str | None = None,
) -> np.ndarray:
    """Logits ``(N, C)`` of every row of ``split`` in eval mode (float32 numpy).

    Non-finite logits raise :class:`NonFiniteOutputError` naming the plugin (fusion, head, or the
    inputs of the fusion) and the phase (``phase``, e.g. ``"epoch 3"``).
    """
    logits, _ = _eval_pass(
        model,
        data,
        split,
        batch_size=batch_size,
        device=device,
        autocast_dtype=autocast_dtype,
        phase=phase,
    )
    return logits


def evaluate(
    model: FusionModel,
    data: TrainingData,
    split: str,
    *,
    buckets: np.ndarray | None = None,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    phase: str | None = None,
) -> tuple[dict[str, float], np.ndarray]:
    """(metrics, logits) of ``split``.

    ``metrics`` holds the classification metrics (:func:`~fusionzoo.train.metrics.classification_metrics`)
    and, for every aux loss the fusion and head return, ``aux_<name>``: its sample-weighted mean over
    the split's evaluation batches (unweighted by λ). For a per-sample loss such as
    ``energy_aware_adaptive``'s ``energy`` this is the exact mean over the rows; for an in-batch loss
    such as ``contrastive`` it depends on ``eval_batch_size``. They become the ``val_aux_<name>`` /
    ``test_aux_<name>`` columns of the results table.
    """
    logits, aux = _eval_pass(
        model,
        data,
        split,
        batch_size=batch_size,
        device=device,
        autocast_dtype=autocast_dtype,
        phase=phase,
    )
    metrics = classification_metrics(
        data.labels(split), logits, num_classes=data.num_classes, buckets=buckets, meta=data.meta(split)
    )
    metrics.update({f"aux_{name}": value for name, value in sorted(aux.items())})
    return metrics, logits


# ---------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(
    directory: str | Path, model: FusionModel, config: RunConfig, info: dict[str, Any]
) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into ``directory`` (atomically, via temp names)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights_tmp = directory / (CHECKPOINT_WEIGHTS + ".tmp")
    save_model(model, str(weights_tmp), metadata={"format": "pt", "fusionzoo": "FusionModel"})
    payload = {"run_config": config.to_dict(), **info}
    config_tmp = directory / (CHECKPOINT_CONFIG + ".tmp")
    config_tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=float))
    weights_tmp.replace(directory / CHECKPOINT_WEIGHTS)
    config_tmp.replace(directory / CHECKPOINT_CONFIG)
    return directory


def load_checkpoint(
    directory: str | Path, device: str = "cpu"
) -> tuple[FusionModel, RunConfig, dict[str, Any]]:
    """Rebuild the model of a checkpoint written by :func:`save_checkpoint`; return (model, config, info)."""
    directory = Path(directory)
    info = json.loads((directory / CHECKPOINT_CONFIG).read_text())
    config = RunConfig.from_dict(info["run_config"])
    shapes = info["model"]
    model = FusionModel(
        shapes["fusion"],
        shapes["head"],
        image_dim=shapes["image_dim"],
        text_dim=shapes["text_dim"],
        dim=config.dim,
        num_classes=shapes["num_classes"],
        num_image_tokens=shapes["num_image_tokens"],
        modality_embeddings=config.modality_embeddings,
        position_embeddings=config.position_embeddings,
        max_positions=config.max_positions,
        dropout=config.dropout,
    )
    load_model(model, str(directory / CHECKPOINT_WEIGHTS), device=device)
    model.eval()
    return model, config, info


# ------------------------------------------------------------------------------------------- training
def train_run(
    config: RunConfig,
    data: TrainingData,
    on_epoch: EpochCallback | None = None,
    progress: ProgressCallback | None = None,
    checkpoint_dir: str | Path | None = None,
) -> RunResult:
    """Train ``config`` on ``data``; see the module docstring for the failure semantics.

    ``on_epoch(epoch, val_metrics)`` runs after each validation (1-based epoch) and may raise.
    ``progress(event)`` gets ``{"event": "start"|"step"|"epoch", "epoch", "epochs", "step", "steps",
    "loss", "val"}`` dicts (``loss``/``val`` on epoch events) for a progress display.
    """
    started = time.perf_counter()
    device = resolve_device(config.device)
    autocast_dtype, use_scaler = _amp_settings(config, device)
    _seed_everything(config.seed)
    model = FusionModel.for_data(config, data).to(device)
    encoder = getattr(data, "encoder", None)
    if encoder is not None:
        encoder.to(device)
    params = count_parameters(model) + (count_parameters(encoder) if encoder is not None else 0)

    train_labels = data.labels("train")
    buckets = class_buckets(train_labels, data.num_classes)
    class_weights = (
        class_weights_from_labels(train_labels, data.num_classes) if config.class_weighted else None
    )
    aux_defaults = {  # default λ the fusion and head declare for their aux losses
        **getattr(model.fusion, "aux_loss_weights", {}),
        **getattr(model.head, "aux_loss_weights", {}),
    }
    loss_fn = LossComposer.from_config(config, class_weights, aux_defaults).to(device)

    n_train = data.size("train")
    steps_per_epoch = len(_batches(n_train, config.batch_size, None))
    total_steps = steps_per_epoch * config.epochs
    optimizer = _make_optimizer(_param_groups(model, encoder, config), config, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(total_steps, max(1, int(config.warmup * total_steps)))
    )
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None
    all_params = [p for g in optimizer.param_groups for p in g["params"]]
    order_generator = torch.Generator().manual_seed(config.seed)

    result = RunResult(
        status="ok", config=config.to_dict(), fusion=model.fusion_name, head=model.head_name, params=params
    )
    best_score, best_state, since_best = -math.inf, None, 0
    checked = False
    step = 0

    def emit(event: dict[str, Any]) -> None:
        if progress is not None:
            progress(event)

    emit({"event": "start", "epoch": 0, "epochs": config.epochs, "step": 0, "steps": steps_per_epoch})
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        if encoder is not None:
            encoder.train()
        sums: dict[str, Tensor] = {}
        seen = 0
        for batch_index, indices in enumerate(_batches(n_train, config.batch_size, order_generator)):
            batch = _to_device(data.batch("train", indices), device)
            context = (
                torch.autocast(device.type, dtype=autocast_dtype)
                if autocast_dtype is not None
                else nullcontext()
            )
            with context:
                out = _forward(model, encoder, batch, check=not checked)
            checked = True
            loss, parts = loss_fn(out.logits, batch["label"], out.aux_losses)
            if not torch.isfinite(loss):
                bad = ", ".join(f"{k}={v.item():.4g}" for k, v in parts.items())
                result.status = "diverged"
                result.error = f"loss became {loss.item()} at epoch {epoch}, step {batch_index + 1} ({bad})"
                break
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(all_params, config.grad_clip, foreach=True)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            step += 1
            size = len(indices)
            seen += size
            sums["loss"] = sums.get("loss", 0.0) + loss.detach() * size
            for name, value in parts.items():
                sums[name] = sums.get(name, 0.0) + value * size
            emit(
                {
                    "event": "step",
                    "epoch": epoch,
                    "epochs": config.epochs,
                    "step": batch_index + 1,
                    "steps": steps_per_epoch,
                }
            )
        if result.status == "diverged":
            break
        val_metrics, _ = evaluate(
            model,
            data,
            "val",
            buckets=buckets,
            batch_size=config.eval_batch_size,
            device=device,
            autocast_dtype=autocast_dtype,
            phase=f"epoch {epoch}",
        )
        record: dict[str, float] = {"epoch": float(epoch), "lr": float(scheduler.get_last_lr()[0])}
        record.update({f"train_{k}": float(v) / max(1, seen) for k, v in sums.items()})
        record.update({f"val_{k}": v for k, v in val_metrics.items()})
        record["epoch_time"] = time.perf_counter() - epoch_start
        result.history.append(record)
        result.epochs_run = epoch
        score = val_metrics.get(config.metric, float("nan"))
        if not math.isnan(score) and score > best_score:
            best_score, since_best = score, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            result.best_epoch, result.val_metrics = epoch, val_metrics
        else:
            since_best += 1
        emit(
            {
                "event": "epoch",
                "epoch": epoch,
                "epochs": config.epochs,
                "step": steps_per_epoch,
                "steps": steps_per_epoch,
                "loss": record.get("train_loss", float("nan")),
                "val": score,
                "metric": config.metric,
            }
        )
        if on_epoch is not None:
            on_epoch(epoch, val_metrics)
        if config.patience and since_best >= config.patience and epoch < config.epochs:
            result.stopped_early = True
            break

    result.steps = step
    if result.status == "ok":
        if best_state is None:  # every validation was NaN (e.g. an empty val split): keep the last weights
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            result.best_epoch = result.epochs_run
        model.load_state_dict(best_state)
        test_metrics, logits = evaluate(
            model,
            data,
            "test",
            buckets=buckets,
            batch_size=config.eval_batch_size,
            device=device,
            autocast_dtype=autocast_dtype,
            phase=f"weights of the best epoch {result.best_epoch}",
        )
        result.metrics = test_metrics
        result.test_predictions = logits.argmax(axis=1) if len(logits) else np.zeros(0, dtype=np.int64)
        result.test_labels = data.labels("test")
        if checkpoint_dir is not None:
            info = {
                "model": {
                    "fusion": model.fusion_name,
                    "head": model.head_name,
                    "image_dim": data.image_dim,
                    "text_dim": data.text_dim,
                    "num_image_tokens": data.num_image_tokens,
                    "num_classes": data.num_classes,
                },
                "classes": list(data.classes),
                "dataset": getattr(data, "name", ""),
                "dataset_fingerprint": getattr(data, "fingerprint", ""),
                "best_epoch": result.best_epoch,
                "val_metrics": result.val_metrics,
                "test_metrics": result.metrics,
            }
            result.checkpoint = str(save_checkpoint(checkpoint_dir, model.cpu(), config, info))
    result.train_time = time.perf_counter() - started
    return result
