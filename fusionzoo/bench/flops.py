"""FLOP counting and the machine's matmul peak: cost estimates (``--dry-run``) and benchmarks/perf.

``train_step_flops`` counts one forward+backward of a :class:`~fusionzoo.train.model.FusionModel` on a
batch with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions, attention — the ops
that dominate; elementwise ops count 0). ``peak_matmul_flops`` times large fp32 ``torch.mm`` calls in
this process, which is the practical upper bound of the same hardware and thread count.
"""

from __future__ import annotations

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from fusionzoo.train.model import FusionModel

__all__ = ["peak_matmul_flops", "synthetic_batch", "train_step_flops"]


def peak_matmul_flops(size: int = 1024, seconds: float = 1.0, dtype: torch.dtype = torch.float32) -> float:
    """Best achieved FLOP/s of ``size×size @ size×size`` matmuls over about ``seconds`` (after warm-up)."""
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    out = torch.empty(size, size, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b, out=out)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        elapsed = time.perf_counter() - start
        best = max(best, 2 * size**3 / elapsed)
    return best


def synthetic_batch(
    batch: int,
    image_tokens: int,
    image_dim: int,
    text_tokens: int,
    text_dim: int,
    num_classes: int,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """A random batch dict with the shapes of the real one (all text tokens real)."""
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.randn(batch, image_tokens, image_dim, generator=g),
        "image_mask": torch.ones(batch, image_tokens, dtype=torch.bool),
        "text": torch.randn(batch, text_tokens, text_dim, generator=g),
        "text_mask": torch.ones(batch, text_tokens, dtype=torch.bool),
        "label": torch.randint(0, num_classes, (batch,), generator=g),
    }


def train_step_flops(model: FusionModel, batch: dict[str, torch.Tensor]) -> int:
    """FLOPs of one forward + backward (CE + aux losses) of ``model`` on ``batch``."""
    model.train()
    with FlopCounterMode(display=False) as counter:
        out = model(batch["image"], batch["text"], batch["image_mask"], batch["text_mask"])
        loss = torch.nn.functional.cross_entropy(out.logits, batch["label"])
        for value in out.aux_losses.values():
            loss = loss + value
        loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())
