"""Symmetric CLIP-style image↔text InfoNCE, via pytorch-metric-learning's ``NTXentLoss``.

For L2-normalised paired embeddings ``u_i`` (image) and ``v_i`` (text) and temperature ``τ``:

    L = ½ [ -1/B Σ_i log softmax_j(u_i·v_j/τ)_i  +  -1/B Σ_i log softmax_j(v_i·u_j/τ)_i ]

The positives are the pairs ``(u_i, v_i)``; every other item of the other modality is a negative.
Samples missing either modality are left out; fewer than two usable pairs give a zero loss that keeps
the graph connected.
"""

from __future__ import annotations

import torch
from pytorch_metric_learning.losses import NTXentLoss
from torch import Tensor, nn


class ClipContrastiveLoss(nn.Module):
    """``loss(image_emb (B, D), text_emb (B, D), valid (B,) bool | None) -> scalar``."""

    def __init__(self, temperature: float = 0.07) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.ntxent = NTXentLoss(temperature=temperature)

    def forward(self, image_emb: Tensor, text_emb: Tensor, valid: Tensor | None = None) -> Tensor:
        if valid is not None:
            image_emb, text_emb = image_emb[valid], text_emb[valid]
        if image_emb.shape[0] < 2:
            return image_emb.sum() * 0.0 + text_emb.sum() * 0.0
        image_emb, text_emb = image_emb.float(), text_emb.float()
        labels = torch.arange(image_emb.shape[0], device=image_emb.device)
        # separate label tensors: pml treats identical objects as "same batch" and the loss would vanish
        i2t = self.ntxent(image_emb, labels, ref_emb=text_emb, ref_labels=labels.clone())
        t2i = self.ntxent(text_emb, labels, ref_emb=image_emb, ref_labels=labels.clone())
        return (i2t + t2i) / 2
