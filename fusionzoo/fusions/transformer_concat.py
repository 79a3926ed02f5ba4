"""Transformer over the two pooled modality vectors, each tagged with a learned modality embedding."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fusionzoo.fusions._vector import VectorFusion
from fusionzoo.layers.attention import check_heads, transformer_encoder
from fusionzoo.registry import register_fusion


@register_fusion
class TransformerConcatFusion(VectorFusion):
    """A 2-token transformer encoder over [v; t] with modality embeddings, mean of its outputs.

    x = [v + e_image; t + e_text] ∈ R^{2×D}      (e_image, e_text: learned modality embeddings)
    h = LN(TransformerEncoder_L(x))              (pre-LN layers, ``heads`` heads, FFN ``ffn_mult``·D)
    z = Σ_i m_i h_i / Σ_i m_i,   m = (has_image, has_text)

    Unlike the published module, whose ``modality_token`` never reached the output, the embeddings are
    added to the tokens, so the encoder can tell image from text. A missing modality's token is a
    padding key (nothing attends to it) and is left out of the mean; a sample with neither modality
    attends over both tokens (zero vectors plus embeddings), so its output stays finite.
    """

    name = "transformer_concat"
    description = "2-token transformer over [v+e_img; t+e_txt] with modality embeddings, mean of outputs"
    test_config = {"layers": 1}  # tiny sizes for contract tests

    def __init__(
        self,
        dim: int,
        *,
        layers: int = 1,
        heads: int = 4,
        ffn_mult: float = 2.0,
        dropout: float = 0.1,
        pool: str = "mean",
    ) -> None:
        super().__init__(dim, pool=pool)
        check_heads(dim, heads)
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.modality_embeddings = nn.Parameter(torch.randn(2, dim) * 0.02)
        self.encoder = transformer_encoder(dim, heads, layers, ffn_mult, dropout, final_norm=False)
        self.norm = nn.LayerNorm(dim)

    def fuse(self, v: Tensor, t: Tensor, has_image: Tensor, has_text: Tensor) -> Tensor:
        tokens = torch.stack([v, t], dim=1) + self.modality_embeddings
        present = torch.stack([has_image, has_text], dim=1)
        present = present | ~present.any(dim=1, keepdim=True)  # neither modality: use both tokens
        hidden = self.norm(self.encoder(tokens, src_key_padding_mask=~present))
        weights = present.to(hidden.dtype).unsqueeze(-1)
        return (hidden * weights).sum(1) / weights.sum(1)

    def no_weight_decay(self) -> set[str]:
        """Modality embeddings: no weight decay (timm convention)."""
        return {"modality_embeddings"}

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        return {
            "layers": IntDistribution(1, 4),
            "ffn_mult": CategoricalDistribution([1.0, 2.0, 4.0]),
            "dropout": FloatDistribution(0.0, 0.3),
        }
