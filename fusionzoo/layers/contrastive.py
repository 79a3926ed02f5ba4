"""Symmetric CLIP-style image↔text InfoNCE, via pytorch-metric-learning.

For L2-normalised paired embeddings ``u_i`` (image) and ``v_i`` (text) and temperature ``τ``:

    L = ½ [ -1/B Σ_i log softmax_j(u_i·v_j/τ)_i  +  -1/B Σ_i log softmax_j(v_i·u_j/τ)_i ]

The positives are the pairs ``(u_i, v_i)``; every other item of the other modality is a negative.
With ``groups`` (B,) the positives of ``u_i`` are every ``v_j`` with ``groups_j = groups_i`` (SupCon
labels): items that share an image or a text in the batch are then not pushed apart as negatives.
Samples missing either modality are left out; fewer than two usable pairs give a zero loss that keeps
the graph connected.

Implementation: pml's ``SupConLoss`` with ``labels = arange(B)`` against the other modality as
``ref_emb`` (cosine similarity, mean reduction) is exactly this cross-entropy over the B×B similarity
matrix, at O(B²) cost. pml's ``NTXentLoss`` gives the same value but builds a (positives × negatives)
mask, O(B³): 116 ms at B=128 and 11 s at B=512 on this CPU, versus about 1 ms.
"""

from __future__ import annotations

import torch
from pytorch_metric_learning.losses import SupConLoss
from pytorch_metric_learning.reducers import MeanReducer
from torch import Tensor, nn


class ClipContrastiveLoss(nn.Module):
    """``loss(image_emb (B, D), text_emb (B, D), valid (B,) bool | None, groups (B,) | None) -> scalar``."""

    def __init__(self, temperature: float = 0.07) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.info_nce = SupConLoss(temperature=temperature, reducer=MeanReducer())

    def forward(
        self, image_emb: Tensor, text_emb: Tensor, valid: Tensor | None = None, groups: Tensor | None = None
    ) -> Tensor:
        if valid is not None:
            image_emb, text_emb = image_emb[valid], text_emb[valid]
            groups = groups[valid] if groups is not None else None
        if image_emb.shape[0] < 2:
            return image_emb.sum() * 0.0 + text_emb.sum() * 0.0
        image_emb, text_emb = image_emb.float(), text_emb.float()
        labels = (
            torch.arange(image_emb.shape[0], device=image_emb.device) if groups is None else groups.long()
        )
        # separate label tensors: pml treats identical objects as "same batch" and the loss would vanish
        i2t = self.info_nce(image_emb, labels, ref_emb=text_emb, ref_labels=labels.clone())
        t2i = self.info_nce(text_emb, labels, ref_emb=image_emb, ref_labels=labels.clone())
        return (i2t + t2i) / 2


def duplicate_groups(*sequences: Tensor) -> Tensor:
    """``(B,)`` group ids: rows ``i`` and ``j`` share a group when any of the ``(B, N, D)`` sequences has
    identical rows ``i`` and ``j`` (connected components: a shared image links two items, a shared
    text links them too)."""
    batch = sequences[0].shape[0]
    parent = list(range(batch))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for tokens in sequences:
        _, inverse = torch.unique(tokens.reshape(batch, -1), dim=0, return_inverse=True)
        first: dict[int, int] = {}
        for i, key in enumerate(inverse.tolist()):
            if key in first:
                parent[root(i)] = root(first[key])
            else:
                first[key] = i
    return torch.tensor([root(i) for i in range(batch)], device=sequences[0].device)
