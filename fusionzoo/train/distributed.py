"""One run trained by several processes with DistributedDataParallel (``torchrun`` / ``bench --ddp N``).

What changes for the :class:`~fusionzoo.train.trainer.Trainer` when a process group is up (world > 1);
nothing here runs in a single process, so single-process numbers are untouched:

- the model is wrapped in ``DistributedDataParallel`` (through :class:`BatchForward`, so the finetune
  encoder that ``forward_batch`` runs is inside DDP's forward and its gradients are all-reduced too);
  every rank builds it from the same seed and DDP broadcasts rank 0's weights;
- training batches: a ``DistributedSampler`` over the training rows (seeded with the run's seed and
  ``set_epoch`` each epoch: one shared permutation, a disjoint share per rank, padded to equal counts),
  cut into per-rank batches of ``batch_size`` (so a step sees ``world × batch_size`` rows);
- a non-finite loss on any rank stops every rank (:func:`all_finite`);
- evaluation is sharded and synchronised: each rank predicts a contiguous block of rows, the logits
  are all-gathered in row order, and every rank computes the same metrics on all rows (so the best
  epoch, early stopping and the test metrics agree everywhere);
- only rank 0 fires side effects (checkpoint, progress) and records results (:mod:`fusionzoo.launch.ddp`).

Backends: NCCL on GPUs (each rank on ``cuda:LOCAL_RANK``, AMP as in single-GPU runs), gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "BatchForward",
    "Distributed",
    "all_finite",
    "current",
    "evaluate_sharded",
    "init_from_env",
    "is_main",
    "rank_batches",
]


@dataclass(frozen=True)
class Distributed:
    rank: int
    world: int
    local_rank: int
    backend: str

    @property
    def main(self) -> bool:
        return self.rank == 0


def current() -> Distributed | None:
    """The process group of this process when there is one with several ranks, else ``None``."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return Distributed(
        dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_backend()
    )


def is_main() -> bool:
    """True outside DDP and on rank 0."""
    group = current()
    return group is None or group.main


def init_from_env(device: str = "auto", timeout_minutes: float = 30) -> Distributed | None:
    """Join the process group torchrun describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ...).

    NCCL when the runs go to CUDA (``device`` auto with GPUs, or cuda), each rank on its local GPU; else
    gloo. Returns ``None`` outside torchrun."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return None
    if not dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available() and (device == "auto" or device.startswith("cuda"))
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(minutes=timeout_minutes))
    return current()


class BatchForward(nn.Module):
    """``forward(batch, check)`` = ``model.forward_batch(batch, check)``: what DDP wraps."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Any], check: bool = False) -> Any:
        return self.model.forward_batch(batch, check=check)


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``DistributedDataParallel`` around :class:`BatchForward` (``find_unused_parameters``: routed
    experts or a missing modality leave some parameters without gradient in a step)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else None
    )
    return DistributedDataParallel(BatchForward(model), device_ids=ids, find_unused_parameters=True)


def rank_batches(n: int, batch_size: int, seed: int, epoch: int, group: Distributed) -> list[Tensor]:
    """This rank's index batches of one epoch (see the module docstring); every rank gets as many."""
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(
        range(n), num_replicas=group.world, rank=group.rank, shuffle=True, seed=seed, drop_last=False
    )
    sampler.set_epoch(epoch)
    chunks = list(torch.tensor(list(sampler), dtype=torch.long).split(batch_size))
    if (
        len(chunks) > 1 and len(chunks[-1]) < 2
    ):  # the single-process rule (in-batch losses), same count everywhere
        chunks.pop()
    return chunks


def all_finite(loss: Tensor, group: Distributed) -> bool:
    """True when the loss is finite on every rank (one small all-reduce)."""
    import torch.distributed as dist

    flag = torch.tensor([0.0 if bool(torch.isfinite(loss)) else 1.0], device=loss.device)
    dist.all_reduce(flag)
    return float(flag.item()) == 0.0


def all_reduce_sums(sums: dict[str, Any], group: Distributed, device: torch.device) -> dict[str, Any]:
    """The epoch's loss sums (and ``_seen``) summed over every rank, for the history row."""
    import torch.distributed as dist

    names = sorted(sums)
    values = torch.tensor([float(sums[k]) for k in names], dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return dict(zip(names, values.tolist(), strict=True))


class _Rows:
    """The data with one split narrowed to rows ``start..stop`` (what one rank evaluates)."""

    def __init__(self, data: Any, split: str, start: int, stop: int) -> None:
        self._data, self._split, self._start, self._stop = data, split, start, stop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._data, name)

    def size(self, split: str) -> int:
        return self._stop - self._start if split == self._split else self._data.size(split)

    def batch(self, split: str, indices: Tensor) -> dict[str, Any]:
        offset = self._start if split == self._split else 0
        return self._data.batch(split, indices + offset)


def evaluate_sharded(
    model: Any, data: Any, split: str, group: Distributed, **kwargs: Any
) -> tuple[dict[str, float], np.ndarray]:
    """:func:`~fusionzoo.train.evaluation.evaluate` with the rows split across ranks, gathered in order."""
    import torch.distributed as dist

    from fusionzoo.train.evaluation import _eval_pass, split_metrics

    buckets = kwargs.pop("buckets", None)
    kwargs.setdefault("autocast_dtype", None)
    kwargs.setdefault("phase", None)
    n = data.size(split)
    per = -(-n // group.world)
    start, stop = min(n, group.rank * per), min(n, (group.rank + 1) * per)
    logits, aux = _eval_pass(model, _Rows(data, split, start, stop), split, **kwargs)
    pieces: list[Any] = [None] * group.world
    dist.all_gather_object(pieces, (logits, aux, stop - start))
    logits = np.concatenate([p[0] for p in pieces]) if n else pieces[0][0]
    rows = sum(p[2] for p in pieces)
    names = sorted({k for p in pieces for k in p[1]})
    aux = {k: sum(p[1].get(k, 0.0) * p[2] for p in pieces) / max(1, rows) for k in names}
    return split_metrics(data, split, logits, aux, buckets), logits
