"""Evaluation of a model on one split: logits of every row, every registered metric, aux-loss means.

:func:`predict` runs the model in eval mode over every row (only training drops a final batch of one);
:func:`evaluate` adds the metrics of the metric registry and, for each aux loss the model returns,
``aux_<name>``: its sample-weighted mean over the split. NaN/inf logits raise
:class:`NonFiniteOutputError` naming the plugin (fusion, head, or the fusion's inputs) and the phase.
Both take ``on_extras``, called with each batch's ``ModelOutput.extras`` (diagnostics, read only: the
trainer's final test evaluation summarises them with :class:`fusionzoo.train.diagnostics.ExtrasSummary`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fusionzoo.errors import FusionzooError
from fusionzoo.metrics.base import evaluate_predictions
from fusionzoo.train.inputs import TrainingData
from fusionzoo.train.model import FusionModel

__all__ = ["NonFiniteOutputError", "eval_batches", "evaluate", "predict", "split_metrics", "to_device"]


ExtrasCallback = Callable[[dict[str, Tensor]], None]


def eval_batches(n: int, batch_size: int) -> list[Tensor]:
    """Evaluation batches: every row, in order (never drops a row)."""
    return list(torch.arange(n).split(batch_size))


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}


class NonFiniteOutputError(FusionzooError, RuntimeError):
    """A plugin produced NaN/inf logits during evaluation; the message names the plugin and the phase."""


def _all_finite(values: Any) -> bool:
    tensors = values if isinstance(values, tuple | list) else (values,)
    return all(
        bool(torch.isfinite(t).all()) for t in tensors if isinstance(t, Tensor) and t.is_floating_point()
    )


def _nonfinite_error(
    model: FusionModel,
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
        model.forward_batch(batch)
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
    on_extras: ExtrasCallback | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """(logits ``(N, C)``, sample-weighted mean of each aux loss over the split)."""
    device = torch.device(device)
    model.eval()
    outputs = []
    aux_sums: dict[str, float] = {}
    rows = 0
    for indices in eval_batches(data.size(split), batch_size):
        batch = to_device(data.batch(split, indices), device)
        context = (
            torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None else nullcontext()
        )
        with context:
            out = model.forward_batch(batch)
        logits = out.logits.float()
        if not bool(torch.isfinite(logits).all()):
            with context:
                error = _nonfinite_error(model, batch, logits, split, phase, len(indices))
            raise error
        if on_extras is not None:
            on_extras(out.extras)
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
    on_extras: ExtrasCallback | None = None,
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
        on_extras=on_extras,
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
    on_extras: ExtrasCallback | None = None,
) -> tuple[dict[str, float], np.ndarray]:
    """(metrics, logits) of ``split``.

    ``metrics`` holds the classification metrics (:func:`~fusionzoo.metrics.base.evaluate_predictions`)
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
        on_extras=on_extras,
    )
    return split_metrics(data, split, logits, aux, buckets), logits


def split_metrics(
    data: TrainingData,
    split: str,
    logits: np.ndarray,
    aux: dict[str, float],
    buckets: np.ndarray | None = None,
) -> dict[str, float]:
    """The classification metrics of ``logits`` on ``split`` plus ``aux_<name>`` per aux loss mean."""
    metrics = evaluate_predictions(
        data.labels(split), logits, num_classes=data.num_classes, buckets=buckets, meta=data.meta(split)
    )
    metrics.update({f"aux_{name}": value for name, value in sorted(aux.items())})
    return metrics
