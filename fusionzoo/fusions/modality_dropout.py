"""Modality dropout: train with whole modalities randomly removed, then fuse with a concat MLP."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from fusionzoo.fusions._vector import VectorFusion
from fusionzoo.layers.mlp import MLP
from fusionzoo.registry import register_fusion

MODES = ("sample", "batch")


@register_fusion
class ModalityDropoutFusion(VectorFusion):
    """Randomly drop a whole modality while training; fuse with an availability-aware concat MLP.

    Training, for each sample b (``mode="sample"``) or once for the whole batch (``mode="batch"``,
    the published variant: one ``torch.rand(1)``):
        u ~ U(0, 1),  s ~ Bernoulli(½);   drop = u < p
        drop image if drop ∧ s,   drop text if drop ∧ ¬s
    Only a sample that has both modalities loses one, so no sample ever loses both.
    Dropped modalities are zeroed and marked absent:
        m_v = has_image ∧ ¬drop_image,   m_t = has_text ∧ ¬drop_text
        z = MLP([m_v·v; m_t·t; m_v; m_t])
    The availability flags tell the MLP which inputs are real. In ``eval()`` nothing is dropped:
    z = MLP([v; t; has_image; has_text]). Extras ``dropped_image``/``dropped_text`` are (B,) floats.
    """

    name = "modality_dropout"
    description = "drops a whole modality with prob p in training (per sample or per batch), then MLP([v;t])"

    def __init__(
        self,
        dim: int,
        *,
        p: float = 0.3,
        mode: str = "sample",
        hidden_mult: float = 2.0,
        dropout: float = 0.1,
        pool: str = "mean",
    ) -> None:
        super().__init__(dim, pool=pool)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got '{mode}'")
        self.p, self.mode = p, mode
        self.mlp = MLP(2 * dim + 2, max(1, int(dim * hidden_mult)), dim, dropout=dropout)

    def drop_masks(self, has_image: Tensor, has_text: Tensor) -> tuple[Tensor, Tensor]:
        """``(drop_image, drop_text)`` (B,) bool for one training step; never both for a sample."""
        draws = 1 if self.mode == "batch" else has_image.shape[0]
        drop = torch.rand(draws, device=has_image.device) < self.p
        pick_image = torch.rand(draws, device=has_image.device) < 0.5
        droppable = has_image & has_text  # a modality is only dropped when the other one stays
        return (drop & pick_image) & droppable, (drop & ~pick_image) & droppable

    def fuse(
        self, v: Tensor, t: Tensor, has_image: Tensor, has_text: Tensor
    ) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        if self.training and self.p > 0:
            drop_image, drop_text = self.drop_masks(has_image, has_text)
        else:
            drop_image, drop_text = torch.zeros_like(has_image), torch.zeros_like(has_text)
        keep_image = (has_image & ~drop_image).to(v.dtype).unsqueeze(-1)
        keep_text = (has_text & ~drop_text).to(t.dtype).unsqueeze(-1)
        fused = self.mlp(torch.cat([v * keep_image, t * keep_text, keep_image, keep_text], dim=-1))
        extras = {"dropped_image": drop_image.to(v.dtype), "dropped_text": drop_text.to(v.dtype)}
        return fused, {}, extras

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        return {
            "p": FloatDistribution(0.0, 0.6),
            "mode": CategoricalDistribution(list(MODES)),
            "hidden_mult": CategoricalDistribution([1.0, 2.0, 4.0]),
            "dropout": FloatDistribution(0.0, 0.5),
        }
