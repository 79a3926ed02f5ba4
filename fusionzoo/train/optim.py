"""Optimiser and learning-rate schedule of a run.

**Weight decay: the standard split (timm's convention).** No decay on biases and on every parameter
with fewer than 2 dimensions (norm weights, modality vectors), on the weights of ``nn.Embedding``
modules, and on whatever a module declares in a ``no_weight_decay()`` method (names relative to that
module, fnmatch patterns allowed; as timm models do: ``{"pos_embed", "cls_token"}``). fusionzoo's own
blocks declare their learnable queries (:class:`~fusionzoo.layers.QueryCrossAttention`), type /
modality / position embeddings and [CLS] tokens, and the MoE experts' biases (stored as
``(E, hidden)`` matrices). Everything else — the matrices of linear, attention and expert layers —
decays. The split itself is ``timm.optim.param_groups_weight_decay``. A finetuned encoder's
parameters get ``backbone_lr``. AdamW uses the fused kernel where supported.

**Learning rate:** linear warm-up over ``warmup`` × the total steps, then cosine decay to 0:

    factor(s) = (s + 1) / W                              for s < W
    factor(s) = ½ (1 + cos(π · min(1, (s − W) / (S − W))))   otherwise
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = [
    "lr_factor",
    "make_optimizer",
    "make_scheduler",
    "no_weight_decay_names",
    "param_groups",
    "weight_decay_groups",
]


def param_groups(model: nn.Module, config: Any) -> list[dict[str, Any]]:
    """The standard weight-decay split (see the module docstring); the finetuned encoder
    (``model.encoder``) gets ``backbone_lr``."""
    encoder = getattr(model, "encoder", None)
    groups = weight_decay_groups(_ModuleView(model, "encoder"), config.weight_decay, config.lr)
    if encoder is not None:
        groups += weight_decay_groups(encoder, config.weight_decay, config.backbone_lr)
    return [g for g in groups if g["params"]]


class _ModuleView(nn.Module):
    """A view of ``module``'s children except ``skip`` (so its parameters can be grouped apart)."""

    def __init__(self, module: nn.Module, skip: str) -> None:
        super().__init__()
        for name, child in module.named_children():
            if name != skip:
                self.add_module(name, child)
        for name, param in module.named_parameters(recurse=False):
            self.register_parameter(name, param)


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


def no_weight_decay_names(module: nn.Module) -> set[str]:
    """Full parameter names (or fnmatch patterns) of ``module`` that must not decay."""
    names: set[str] = set()
    for prefix, submodule in module.named_modules():
        declared = getattr(submodule, "no_weight_decay", None)
        own = set(declared()) if callable(declared) else set()
        if isinstance(submodule, nn.Embedding):
            own.add("weight")
        names.update(f"{prefix}.{name}" if prefix else name for name in own)
    return names


def weight_decay_groups(module: nn.Module, weight_decay: float, lr: float) -> list[dict[str, Any]]:
    """AdamW groups of ``module``'s trainable parameters: ``weight_decay`` or 0 (see the module doc)."""
    from timm.optim import param_groups_weight_decay

    groups = param_groups_weight_decay(
        module, weight_decay, no_weight_decay_list=sorted(no_weight_decay_names(module))
    )
    return [{**group, "lr": lr} for group in groups]
