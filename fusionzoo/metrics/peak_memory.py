"""Peak memory of a training step (efficiency)."""

from __future__ import annotations

import weakref
from functools import partial
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from fusionzoo.metrics.base import Metric, ModelContext, register_metric


class LiveTensorBytes(TorchDispatchMode):
    """Tracks the bytes of tensor storages created while active and still alive; ``peak`` is the
    high-water mark. A storage counts once however many views of it exist, and is subtracted when it
    is freed (a ``weakref.finalize`` on the storage)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._tracked: dict[int, weakref.finalize] = {}

    def _free(self, key: int, size: int) -> None:
        self._tracked.pop(key, None)
        self.live -= size

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor) or tensor.device.type != "cpu":
                continue
            storage = tensor.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
            if size == 0 or key in self._tracked:
                continue
            self.live += size
            self.peak = max(self.peak, self.live)
            self._tracked[key] = weakref.finalize(storage, self._free, key, size)
        return out


def _state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the optimiser's state tensors (AdamW: the two moments and the step of each parameter)."""
    tensors = [v for state in optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in tensors if t.device.type == "cpu")


@register_metric
class PeakMemory(Metric):
    """peak_memory_mb: memory high-water mark of one training step at the training batch size, in MiB:
    forward, CE + aux loss, backward, gradient clipping and the optimiser step, with the optimiser's
    state resident (the run's AdamW, :func:`fusionzoo.train.optim.make_optimizer`: two moments per
    parameter, i.e. twice the parameter bytes).

    The state exists from a training run's first step on, so one step is taken first to create it and
    the next step is measured. CUDA: ``torch.cuda.max_memory_allocated`` over that step (after
    ``reset_peak_memory_stats``; parameters and optimiser state included, as they live on the device).
    CPU: the parameter, buffer, optimiser-state and input-batch bytes plus the peak of the bytes of
    tensors created during the step and still alive, tracked op by op by a ``TorchDispatchMode``
    (activations, gradients and temporaries; allocator caching and fragmentation are not counted,
    unlike an RSS delta). The model's weights are restored afterwards: the measurement changes nothing.
    """

    name = "peak_memory"
    description = "peak memory of a training step (with the optimiser step and state) in MiB"
    direction = "min"
    kind = "model"
    columns = ("peak_memory_mb",)

    def compute(self, ctx: ModelContext) -> dict[str, float]:
        from fusionzoo.train.config import RunConfig
        from fusionzoo.train.optim import make_optimizer

        model, device = ctx.model, torch.device(ctx.device)
        batch = ctx.batch(max(1, int(ctx.batch_size)))
        saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
        optimizer = make_optimizer(model, RunConfig(device=str(device)))
        model.train()
        try:
            step = partial(_training_step, model, optimizer, batch, RunConfig().grad_clip)
            step()  # creates the optimiser state
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
                step()
                torch.cuda.synchronize(device)
                peak = torch.cuda.max_memory_allocated(device)
            else:
                model.zero_grad(set_to_none=True)
                held = (*model.parameters(), *model.buffers(), *batch.values())
                resident = sum(t.numel() * t.element_size() for t in held) + _state_bytes(optimizer)
                with LiveTensorBytes() as tracker:
                    step()
                peak = resident + tracker.peak
        finally:
            model.load_state_dict(saved)
            model.zero_grad(set_to_none=True)
            model.eval()
        return {"peak_memory_mb": peak / 2**20}


def _training_step(
    model: Any, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor], grad_clip: float
) -> None:
    """One step as the trainer takes it: zero the gradients, forward + loss, backward, clip, step."""
    from fusionzoo.metrics._flops import training_loss  # torch-heavy: imported when measured

    optimizer.zero_grad(set_to_none=True)
    training_loss(model, batch).backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)
    optimizer.step()
