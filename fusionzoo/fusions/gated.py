"""Gated fusion: a learned per-feature convex blend of the two pooled modalities."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fusionzoo.fusions._vector import VectorFusion
from fusionzoo.registry import register_fusion


@register_fusion
class GatedFusion(VectorFusion):
    """Per-feature sigmoid gate between the (projected) image and text vectors.

    g  = σ(W_g [v; t] + b_g) ∈ (0, 1)^D
    v' = W_v v + b_v,   t' = W_t t + b_t        (``project=True``; ``project=False``: v' = v, t' = t)
    z  = g ⊙ v' + (1 − g) ⊙ t'

    so every feature of ``z`` lies between ``v'`` and ``t'`` (a convex blend). The gate reads the raw
    pooled vectors ``v``, ``t``. Missing modality: where a sample has no image the gate is forced to
    0 (``z = t'``), where it has no text to 1 (``z = v'``); with neither it stays learned (both vectors
    are zeros then, the output is finite).
    """

    name = "gated"
    description = "per-feature sigmoid gate g=σ(W[v;t]): z = g⊙v' + (1−g)⊙t'"

    def __init__(self, dim: int, *, project: bool = True, pool: str = "mean") -> None:
        super().__init__(dim, pool=pool)
        self.project = project
        self.gate = nn.Linear(2 * dim, dim)
        self.image_proj = nn.Linear(dim, dim) if project else nn.Identity()
        self.text_proj = nn.Linear(dim, dim) if project else nn.Identity()

    def fuse(
        self, v: Tensor, t: Tensor, has_image: Tensor, has_text: Tensor
    ) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        gate = torch.sigmoid(self.gate(torch.cat([v, t], dim=-1)))
        only_image = (has_image & ~has_text).unsqueeze(-1)
        only_text = (has_text & ~has_image).unsqueeze(-1)
        gate = torch.where(only_image, torch.ones_like(gate), gate)
        gate = torch.where(only_text, torch.zeros_like(gate), gate)
        fused = gate * self.image_proj(v) + (1 - gate) * self.text_proj(t)
        return fused, {}, {"gate": gate.detach()}

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution

        return {
            "project": CategoricalDistribution([True, False]),
            "pool": CategoricalDistribution(["mean", "max"]),
        }
