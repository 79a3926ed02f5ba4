"""Optimiser and learning-rate schedule of a run.

AdamW (fused kernel where supported) with decoupled weight decay on matrices only; a finetuned
encoder's parameters get ``backbone_lr``. Learning rate: linear warm-up over ``warmup`` × the total
steps, then cosine decay to 0:

    factor(s) = (s + 1) / W                              for s < W
    factor(s) = ½ (1 + cos(π · min(1, (s − W) / (S − W))))   otherwise
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["lr_factor", "make_optimizer", "make_scheduler", "param_groups"]


def param_groups(model: nn.Module, config: Any) -> list[dict[str, Any]]:
    """Weight decay on matrices only; the finetuned encoder (``model.encoder``) gets ``backbone_lr``."""
    encoder = getattr(model, "encoder", None)
    head_params = model.head_parameters() if hasattr(model, "head_parameters") else list(model.parameters())
    groups: list[dict[str, Any]] = []
    encoder_params = [p for p in encoder.parameters() if p.requires_grad] if encoder is not None else []
    for params, lr in ((head_params, config.lr), (encoder_params, config.backbone_lr)):
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        if decay:
            groups.append({"params": decay, "lr": lr, "weight_decay": config.weight_decay})
        if no_decay:
            groups.append({"params": no_decay, "lr": lr, "weight_decay": 0.0})
    return groups


def make_optimizer(model: nn.Module, config: Any) -> torch.optim.Optimizer:
    groups = param_groups(model, config)
    # fused AdamW: one kernel for all parameters (CPU and CUDA); falls back to foreach where unsupported
    try:
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def lr_factor(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """The multiplier of the base learning rate at step ``s`` (see the module docstring)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def make_scheduler(optimizer: torch.optim.Optimizer, config: Any, total_steps: int) -> Any:
    warmup = max(1, int(config.warmup * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(total_steps, warmup))
