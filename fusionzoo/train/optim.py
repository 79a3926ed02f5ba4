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

**Learning rate:** ``transformers.get_cosine_schedule_with_warmup``: linear warm-up from 0 over
W = max(1, ⌊``warmup`` × S⌋) of the S total steps, then half a cosine period down to 0:

    factor(s) = s / W                                    for s < W
    factor(s) = max(0, ½ (1 + cos(π · (s − W) / max(1, S − W))))   otherwise
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = [
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


def make_optimizer(model: nn.Module, config: Any, extra: nn.Module | None = None) -> torch.optim.Optimizer:
    """AdamW over ``model`` (:func:`param_groups`) and ``extra`` (a module trained alongside it, e.g. a
    training protocol's heads: same learning rate and weight-decay split)."""
    groups = param_groups(model, config)
    if extra is not None:
        groups += [g for g in weight_decay_groups(extra, config.weight_decay, config.lr) if g["params"]]
    # fused AdamW: one kernel for all parameters (CPU and CUDA); falls back to foreach where unsupported
    try:
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def make_scheduler(optimizer: torch.optim.Optimizer, config: Any, total_steps: int) -> Any:
    """The run's LambdaLR: warm-up then cosine decay (see the module docstring), stepped per batch."""
    from transformers import get_cosine_schedule_with_warmup

    warmup = max(1, int(config.warmup * total_steps))
    return get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)


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
