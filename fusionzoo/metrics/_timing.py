"""Shared timing blocks of the efficiency metrics (``torch.utils.benchmark``)."""

from __future__ import annotations

from typing import Any

import torch

WARMUP_CALLS = 5
MIN_RUN_TIME = 0.5  # seconds of measured calls per figure


def forward_timer(ctx: Any, size: int) -> Any:
    """A ``torch.utils.benchmark.Timer`` of one eval-mode forward (no grad) at batch ``size``."""
    import logging

    # torch.utils.benchmark imports torch.utils.cpp_extension, which warns about CUDA_HOME on CPU-only
    # machines; nothing here compiles an extension
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils import benchmark

    batch = ctx.batch(size)
    model = ctx.model.eval()

    def forward() -> None:
        with torch.inference_mode():
            model(batch["image"], batch["text"], batch["image_mask"], batch["text_mask"])
        if torch.device(ctx.device).type == "cuda":
            torch.cuda.synchronize()

    return benchmark.Timer(stmt="forward()", globals={"forward": forward}, num_threads=int(ctx.threads))


def warm_up(timer: Any, calls: int = WARMUP_CALLS) -> None:
    timer.timeit(calls)
