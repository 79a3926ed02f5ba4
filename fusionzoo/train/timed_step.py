"""One training step as the trainer runs it, as a closure the performance scripts time
(``benchmarks/perf/flops_utilization.py``, ``compile_step.py``, ``gpu_checks.py``)."""

from __future__ import annotations

from typing import Any

import torch

from fusionzoo.train.losses import LossComposer
from fusionzoo.train.model import FusionModel
from fusionzoo.train.precision import autocast, fp32_outputs

__all__ = ["make_train_step"]


def make_train_step(
    model: FusionModel,
    batch: dict[str, torch.Tensor],
    config: Any,
    autocast_dtype: torch.dtype | None = None,
    forward: Any = None,
) -> Any:
    """A closure running one training step as the trainer does — forward under the precision's
    autocast, the loss in fp32 (:class:`~fusionzoo.train.losses.LossComposer`), backward, global
    gradient clipping, fused AdamW — on ``batch`` (already on the model's device). ``forward``
    replaces ``model.forward_batch`` (e.g. :func:`fusionzoo.train.compiled.compile_forward`'s)."""
    device = next(model.parameters()).device
    loss_fn = LossComposer.from_config(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    params = [p for p in model.parameters() if p.requires_grad]
    run = forward if forward is not None else model.forward_batch

    def step() -> torch.Tensor:
        with autocast(device, autocast_dtype):
            out = run(batch)
        logits, aux = fp32_outputs(out.logits, out.aux_losses)
        loss, _ = loss_fn(logits, batch["label"], aux)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        optimizer.step()
        return loss.detach()

    model.train()
    return step
