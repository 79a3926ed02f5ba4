"""``RunConfig.compile``: the model's forward (and so its backward) through ``torch.compile``.

``on`` compiles ``model.forward_batch`` with inductor, which fuses the elementwise work around the
matmuls (layer norms, GELUs, masks, residual adds) into generated kernels; the backward is compiled with
it (AOTAutograd). The trainer runs the first, contract-checked step eagerly and every later training
step and every evaluation batch through the compiled function (evaluation is a second, no-grad graph;
the epoch's smaller last batch one recompile with a dynamic batch size). The weights are the model's
own: best-weight restores and checkpoints are unchanged. The MoE experts' ``grouped_mm`` dispatch
cannot be traced in fp32 on a CPU (torch's meta kernel accepts bf16/fp16 only), so it runs eagerly
between compiled graphs (:func:`compile_forward` marks it).

``auto`` compiles where the measured saving pays for the compile time (:func:`use_compile`): never on a
CPU — ``benchmarks/perf/compile_step.py`` measured compiled steps 0.93-1.32× the eager ones for
18-200 s of compiling, a break-even of ≥ 8,000 steps or never (docs/scale.md) — and on CUDA only with ``on``: no GPU measurement exists yet
(``benchmarks/perf/gpu_checks.py`` prints it). A compiled run's numbers differ from eager ones in
the last bits (fused kernels round differently), so compiling is part of the run's regime
(``compile=inductor``, :mod:`fusionzoo.results.identity`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["compile_forward", "use_compile"]


def use_compile(setting: str, device: torch.device) -> bool:
    """Whether a run with ``compile = setting`` on ``device`` compiles (the rule: module docstring)."""
    if setting not in ("auto", "on", "off"):
        raise ValueError(f"compile must be one of auto, on, off, got {setting!r}")
    return setting == "on"


def compile_forward(model: nn.Module, backend: str = "inductor") -> Callable[..., Any]:
    """``torch.compile(model.forward_batch)``, with the MoE experts' grouped-matmul kernel left eager."""
    from fusionzoo.layers.moe import ExpertMLPs

    for module in model.modules():
        if isinstance(module, ExpertMLPs) and "_grouped" not in vars(module):
            module._grouped = torch.compiler.disable(module._grouped)  # type: ignore[method-assign]
    return torch.compile(model.forward_batch, backend=backend)
