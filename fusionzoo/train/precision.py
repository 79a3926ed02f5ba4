"""Numeric precision of training and evaluation: ``RunConfig.precision`` → an autocast context.

``precision`` is one of:

- ``fp32``: no autocast; every op in float32.
- ``bf16``: ``torch.autocast(device, torch.bfloat16)`` around the forward pass (training and
  evaluation): matmuls, linear layers and attention run in bfloat16, the ops autocast keeps in float32
  (softmax, layer norm, losses, reductions) stay there. The weights, their gradients and the optimiser
  state stay float32 ("master weights"), and the trainer casts the logits and aux losses to float32
  before the loss (:func:`fp32_outputs`), so the loss, its gradient scale and every metric are fp32.
  bfloat16 keeps float32's exponent range: no grad scaler.
- ``fp16``: CUDA only, with a grad scaler (float16's range is narrow).
- ``auto``: the rule of :func:`resolve_precision` — on CUDA bf16 where the GPU supports it, else fp16;
  on a CPU fp32. bf16 on a CPU with native bfloat16 matmuls (AVX512-BF16 or AMX-BF16,
  :func:`cpu_has_native_bf16`) is 2-3× faster at the real preset's shapes, but it is not the default:
  on the check set FLUID's bf16 mean fell outside its fp32 95 % interval over 3 seeds (docs/scale.md,
  "bf16"), and at the quick preset's width a step is overhead-bound (bf16 saves ≤ 11 %). Ask for it with
  ``bf16``; :data:`AUTO_BF16_MIN_DIM` is where ``auto`` would start if the measurement allows it.

The precision a run resolves to is part of its identity (``regime``, :mod:`fusionzoo.results.identity`),
so a bf16 run is never reused or averaged as an fp32 one. It is an execution field of
:class:`~fusionzoo.train.config.RunConfig` (not in ``config_hash``): the regime records what it means
on the machine that trains.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from functools import cache
from pathlib import Path
from typing import Any

import torch

from fusionzoo.train.config import PRECISIONS

__all__ = [
    "AUTO_BF16_MIN_DIM",
    "PRECISIONS",
    "autocast",
    "cpu_has_native_bf16",
    "fp32_outputs",
    "precision_name",
    "resolve_precision",
]

AUTO_BF16_MIN_DIM: int | None = None  # `auto` on a native-bf16 CPU: bf16 from this width D on (None: never)
_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}


@cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX-BF16): where bf16 matmuls run
    several times faster than fp32 ones instead of being emulated (slower than fp32)."""
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        if probe is not None and (probe() or (amx is not None and amx())):
            return True
    except RuntimeError:  # pragma: no cover - a build without cpuinfo
        pass
    return bool(_cpuinfo_flags() & {"avx512_bf16", "amx_bf16"})


def _cpuinfo_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.partition(":")[2].split())
    return set()


def _cuda_bf16() -> bool:
    try:
        return bool(torch.cuda.is_bf16_supported())
    except (RuntimeError, AssertionError):  # no CUDA runtime to ask
        return False


def resolve_precision(
    precision: str, device: torch.device, dim: int | None = None
) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or ``None`` for fp32, whether a grad scaler is needed) of ``precision`` on
    ``device`` for a run of width ``dim`` (the ``auto`` rule: module docstring).

    Raises ``ValueError`` for an unknown precision or fp16 on a CPU.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return None, False
    if device.type == "cuda":
        if precision == "bf16" or (precision == "auto" and _cuda_bf16()):
            return torch.bfloat16, False
        return torch.float16, True
    if precision == "fp16":
        raise ValueError(f"precision fp16 runs on CUDA only (device {device}); use bf16 or fp32 on a CPU")
    if precision == "bf16":
        return torch.bfloat16, False
    wide = AUTO_BF16_MIN_DIM is not None and (dim is None or dim >= AUTO_BF16_MIN_DIM)
    native = device.type == "cpu" and cpu_has_native_bf16()
    return (torch.bfloat16, False) if wide and native else (None, False)


def precision_name(dtype: torch.dtype | None) -> str:
    """``fp32`` / ``bf16`` / ``fp16`` of an autocast dtype (``None``: fp32)."""
    return _NAMES.get(dtype, "fp32") if dtype is not None else "fp32"


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[Any]:
    """The autocast context of a forward pass (``nullcontext`` for fp32)."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def fp32_outputs(
    logits: torch.Tensor, aux_losses: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits and aux losses in float32 (a no-op in fp32): the loss and the metrics are computed there."""
    return logits.float(), {name: value.float() for name, value in aux_losses.items()}
