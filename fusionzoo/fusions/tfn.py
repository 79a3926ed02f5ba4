"""Tensor Fusion Network (Zadeh et al., EMNLP 2017): the outer product of the modalities with a 1 appended."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fusionzoo.fusions._vector import VectorFusion
from fusionzoo.registry import register_fusion


@register_fusion
class TensorFusion(VectorFusion):
    """Tensor fusion of the pooled modalities after a projection to ``inner`` = k dimensions.

        h_v = m_v · (W_v v + b_v) ∈ R^k,   h_t = m_t · (W_t t + b_t) ∈ R^k      (m: modality present)
        Z = [h_v; 1] ⊗ [h_t; 1] ∈ R^{(k+1)×(k+1)}
          = [[h_v h_tᵀ, h_v], [h_tᵀ, 1]]        bilinear block, both unimodal terms, a constant
        z = W_o Dropout(vec(Z)) + b_o ∈ R^D

    The appended 1 is what makes Z hold the unimodal terms beside the bimodal one (the paper's
    "tensor fusion layer"). Projecting to k first keeps vec(Z) at (k+1)² entries (k = 16: 289) instead
    of (D+1)² (D = 256: 66,049), so ``W_o`` has (k+1)²·D weights. The paper's post-fusion "inference
    subnetwork" is the head. A missing modality's h is set to 0, so Z keeps only the present modality's
    unimodal term and the constant (its bilinear block is zero), as if that modality had no signal.

    No ``rank`` option: a rank-r factorisation of ``W_o`` over the modes of Z,
    z = Σ_i (A_i [h_v; 1]) ⊙ (B_i [h_t; 1]), is Low-rank Multimodal Fusion (Liu et al., ACL 2018),
    the ``lmf`` plugin in ``registry/lmf`` (there on [v; 1], [t; 1] directly; composing A_i with the
    projection W_v only restricts its factors), so it would add no new model.
    """

    name = "tfn"
    description = "Tensor Fusion Network: W·vec([h_v;1] ⊗ [h_t;1]) on k-dim projections (Zadeh et al. 2017)"

    def __init__(self, dim: int, *, inner: int = 16, dropout: float = 0.1, pool: str = "mean") -> None:
        super().__init__(dim, pool=pool)
        if not isinstance(inner, int) or inner < 1:
            raise ValueError(f"inner must be an int >= 1, got {inner!r}")
        self.inner = inner
        self.image_proj = nn.Linear(dim, inner)
        self.text_proj = nn.Linear(dim, inner)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear((inner + 1) ** 2, dim)

    def tensor(self, v: Tensor, t: Tensor, has_image: Tensor, has_text: Tensor) -> Tensor:
        """``Z = [h_v; 1] ⊗ [h_t; 1]``, ``(B, k+1, k+1)``."""
        ones = v.new_ones(v.shape[0], 1)
        h_v = self.image_proj(v) * has_image.to(v.dtype).unsqueeze(-1)
        h_t = self.text_proj(t) * has_text.to(t.dtype).unsqueeze(-1)
        return torch.einsum("bi,bj->bij", torch.cat([h_v, ones], -1), torch.cat([h_t, ones], -1))

    def fuse(self, v: Tensor, t: Tensor, has_image: Tensor, has_text: Tensor) -> Tensor:
        return self.out(self.dropout(self.tensor(v, t, has_image, has_text).flatten(1)))

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        return {
            "inner": CategoricalDistribution([4, 8, 16, 32]),
            "dropout": FloatDistribution(0.0, 0.5),
        }
