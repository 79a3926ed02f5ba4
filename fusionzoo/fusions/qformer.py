"""A shared Q-Former over the concatenated image and text tokens ("Modified BLIP-2", FLUID Table 1)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from fusionzoo.interface import Fusion, FusionOutput
from fusionzoo.layers.attention import QueryCrossAttention
from fusionzoo.layers.modality import ModalityConcat
from fusionzoo.registry import register_fusion


@register_fusion
class QFormerFusion(Fusion):
    """One set of learnable queries distils both modalities at once (no gate, no contrastive loss).

        X = [I + e_image; T + e_text]   (padding masked)
        Z = QFormer(Q; X) ∈ R^{queries × D}, per block (post-LN, BLIP-2's Q-Former block):
            S = LN(Q + SelfAttn(Q, Q, Q))          the queries interact (``self_attention=True``)
            H = LN(S + CrossAttn(S, X, X));   Q' = LN(H + FFN(H))

    QFormer stacks ``layers`` such blocks (:class:`~fusionzoo.layers.QueryCrossAttention`);
    ``self_attention=false`` drops the query self-attention (every query then reads X on its own, as
    in FLUID's Q-transform). BLIP-2 puts a cross-attention in every other block; here every block has
    one. A missing modality is simply masked out.
    """

    name = "qformer"
    description = "Modified BLIP-2: one shared Q-Former (query self-attn + cross-attn) over [I; T]"
    kind = "token"
    test_config = {"queries": 4, "layers": 1}  # tiny sizes for contract tests

    def __init__(
        self,
        dim: int,
        *,
        queries: int = 32,
        layers: int = 2,
        heads: int = 8,
        ffn_mult: float = 4.0,
        dropout: float = 0.1,
        self_attention: bool = True,
    ) -> None:
        super().__init__(dim)
        self.concat = ModalityConcat(dim)
        self.qformer = QueryCrossAttention(
            dim, queries, layers, heads, ffn_mult, dropout, self_attention=self_attention
        )

    def forward(
        self, image: Tensor, text: Tensor, image_mask: Tensor | None = None, text_mask: Tensor | None = None
    ) -> FusionOutput:
        tokens, mask = self.concat(image, text, image_mask, text_mask)
        return FusionOutput(tokens=self.qformer(tokens, mask))

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        return {
            "queries": CategoricalDistribution([8, 16, 32, 64]),
            "layers": IntDistribution(1, 4),
            "ffn_mult": CategoricalDistribution([2.0, 4.0]),
            "dropout": FloatDistribution(0.0, 0.3),
        }
