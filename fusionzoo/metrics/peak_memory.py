"""Peak memory of a training step (efficiency)."""

from __future__ import annotations

import weakref
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


@register_metric
class PeakMemory(Metric):
    """peak_memory_mb: memory high-water mark of one training step (forward + CE/aux loss + backward) at
    the training batch size, in MiB.

    CUDA: ``torch.cuda.max_memory_allocated`` over the step (after ``reset_peak_memory_stats``;
    parameters included, as they live on the device). CPU: the parameter, buffer and input-batch bytes plus the peak
    of the bytes of tensors created during the step and still alive, tracked op by op by a
    ``TorchDispatchMode`` (activations, gradients and temporaries; allocator caching and fragmentation
    are not counted, unlike an RSS delta).
    """

    name = "peak_memory"
    description = "peak memory of a training step in MiB (CUDA allocator, or live-tensor bytes on CPU)"
    direction = "min"
    kind = "model"
    columns = ("peak_memory_mb",)

    def compute(self, ctx: ModelContext) -> dict[str, float]:
        from fusionzoo.bench.flops import training_loss  # torch-heavy: imported when measured

        model, device = ctx.model, torch.device(ctx.device)
        batch = ctx.batch(max(1, int(ctx.batch_size)))
        model.zero_grad(set_to_none=True)
        model.train()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            training_loss(model, batch).backward()
            torch.cuda.synchronize(device)
            peak = torch.cuda.max_memory_allocated(device)
        else:
            held = (*model.parameters(), *model.buffers(), *batch.values())
            resident = sum(t.numel() * t.element_size() for t in held)
            with LiveTensorBytes() as tracker:
                training_loss(model, batch).backward()
            peak = resident + tracker.peak
        model.zero_grad(set_to_none=True)
        model.eval()
        return {"peak_memory_mb": peak / 2**20}
