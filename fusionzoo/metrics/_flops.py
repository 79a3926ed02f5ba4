"""FLOP counting and the machine's matmul peak: cost estimates (``--dry-run``) and benchmarks/perf.

``train_step_flops`` counts one forward+backward of a :class:`~fusionzoo.train.model.FusionModel` on a
batch with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions, attention — the ops
that dominate; elementwise ops count 0), ``forward_flops`` one forward in eval mode. FLOPs = 2 · MAC
(a multiply-add is two FLOPs), as FlopCounterMode counts them. ``peak_matmul_flops`` times large fp32
``torch.mm`` calls in this process, which is the practical upper bound of the same hardware and thread
count.

FlopCounterMode (torch 2.14) has no formula for ``aten._scaled_dot_product_flash_attention_for_cpu``
(and its backward), the fused kernel ``nn.MultiheadAttention`` dispatches to on CPU, so it counted the
attention products QKᵀ and AV as 0 there; this module registers torch's own SDPA formulas for them
(``register_cpu_attention_formulas``, done on import; ``tests/test_efficiency.py`` checks a hand count).

Nor has it one for ``aten._grouped_mm`` (``torch.nn.functional.grouped_mm``), the kernel the MoE
experts run by default (:class:`~fusionzoo.layers.moe.ExpertMLPs`, dispatch ``grouped``), so every
``moe`` head's experts counted 0 FLOPs forward and backward. :func:`grouped_mm_flop` counts
2 · Σ_g rows_g · in · out, registered on import (``register_grouped_mm_formula``). What each MoE
dispatch is counted as (``tests/test_moe.py`` checks each against the analytic count):

- ``grouped`` and ``loop``: the useful FLOPs, 2 · (R·k) · (in·hidden + hidden·out) forward for R routed
  tokens and top-k (``grouped`` pads ``out`` to a multiple of 4 columns for alignment and counts those
  ≤ 3 zero columns too);
- ``padded``: the FLOPs it executes, **padding included**: every expert computes ``capacity`` =
  the largest expert load rows, 2 · E · capacity · (in·hidden + hidden·out) — more than the useful count
  whenever routing is not perfectly balanced.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.flop_counter import FlopCounterMode

if TYPE_CHECKING:  # annotations only: the metrics sit below the training layer
    from fusionzoo.train.model import FusionModel

__all__ = [
    "forward_flops",
    "grouped_mm_flop",
    "peak_matmul_flops",
    "register_cpu_attention_formulas",
    "register_grouped_mm_formula",
    "synthetic_batch",
    "train_step_flops",
    "training_loss",
]


def register_cpu_attention_formulas() -> None:
    """Count the CPU fused attention kernel (forward and backward) with torch's SDPA formulas."""
    from torch.utils import flop_counter

    aten = torch.ops.aten
    pairs = (
        ("_scaled_dot_product_flash_attention_for_cpu", flop_counter.sdpa_flop),
        ("_scaled_dot_product_flash_attention_for_cpu_backward", flop_counter.sdpa_backward_flop),
    )
    for op_name, formula in pairs:
        op = getattr(aten, op_name, None)
        if op is not None and op not in flop_counter.flop_registry:
            # the formulas are already shape-wrapped by torch: register them as they are
            flop_counter.register_flop_formula(op, get_raw=True)(formula)


register_cpu_attention_formulas()


def grouped_mm_flop(a_shape: Any, b_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """FLOPs of ``aten._grouped_mm(a, b, offs)``: 2 · Σ_g rows_g · in · out over the groups.

    2D ``a (M, K)`` × 3D ``b (G, K, N)`` (rows of ``a`` split by ``offs``), 3D × 2D and 3D × 3D: each
    output element is one length-K dot product, 2 · |out| · K. 2D × 2D (the weight gradient, the
    contracted dimension split by ``offs``): the groups' products add up to 2 · M · K · N.
    """
    if len(a_shape) == 2 and len(b_shape) == 2:
        return 2 * a_shape[0] * a_shape[1] * b_shape[1]
    return 2 * math.prod(out_shape) * a_shape[-1]


def register_grouped_mm_formula() -> None:
    """Count ``aten._grouped_mm`` (forward and backward: its backward is ``_grouped_mm`` too)."""
    from torch.utils import flop_counter

    op = getattr(torch.ops.aten, "_grouped_mm", None)
    if op is not None and op not in flop_counter.flop_registry:
        flop_counter.register_flop_formula(op)(grouped_mm_flop)


register_grouped_mm_formula()


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


def training_loss(model: FusionModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """CE + every aux loss of one forward of ``model`` on ``batch`` (what a training step backpropagates)."""
    out = model(batch["image"], batch["text"], batch["image_mask"], batch["text_mask"])
    loss = torch.nn.functional.cross_entropy(out.logits, batch["label"])
    for value in out.aux_losses.values():
        loss = loss + value
    return loss


def train_step_flops(model: FusionModel, batch: dict[str, torch.Tensor]) -> int:
    """FLOPs of one forward + backward (CE + aux losses) of ``model`` on ``batch``."""
    model.train()
    with FlopCounterMode(display=False) as counter:
        training_loss(model, batch).backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def forward_flops(model: FusionModel, batch: dict[str, torch.Tensor]) -> int:
    """FLOPs of one forward of ``model`` in eval mode on ``batch`` (the whole batch).

    Autograd stays on so ``nn.MultiheadAttention``/``TransformerEncoderLayer`` take their regular
    path, whose ops FlopCounterMode knows (their inference fast path is one fused op it counts as 0);
    the arithmetic is the same."""
    was_training = model.training
    model.eval()
    with torch.enable_grad(), FlopCounterMode(display=False) as counter:
        model(batch["image"], batch["text"], batch["image_mask"], batch["text_mask"])
    model.train(was_training)
    return int(counter.get_total_flops())
