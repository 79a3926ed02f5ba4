"""Optimiser parameter groups: the standard weight-decay split (timm's convention).

No decay on biases and on every parameter with fewer than 2 dimensions (norm weights, modality
vectors), on the weights of ``nn.Embedding`` modules, and on whatever a module declares in a
``no_weight_decay()`` method (names relative to that module, fnmatch patterns allowed; as timm models
do: ``{"pos_embed", "cls_token"}``). fusionzoo's own blocks declare their learnable queries
(:class:`~fusionzoo.layers.QueryCrossAttention`), type / modality / position embeddings and [CLS]
tokens, and the MoE experts' biases (stored as ``(E, hidden)`` matrices). Everything else — the
matrices of linear, attention and expert layers — decays. The split itself is
``timm.optim.param_groups_weight_decay``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["no_weight_decay_names", "weight_decay_groups"]


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
