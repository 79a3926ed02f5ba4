"""Multimodal Transformer, MulT (Tsai et al., ACL 2019): crossmodal attention both ways, then self-attention."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from fusionzoo.interface import Fusion, FusionOutput
from fusionzoo.layers.attention import (
    QueryCrossAttentionBlock,
    check_heads,
    padding_keys,
    transformer_encoder,
)
from fusionzoo.layers.modality import join_streams
from fusionzoo.layers.pooling import mask_or_ones
from fusionzoo.registry import register_fusion


class Crossmodal(nn.Module):
    """The crossmodal transformer β→α: ``layers`` pre-LN blocks, queries from the target stream Z
    (starting at X_α), keys and values from the source tokens X_β (paper §3.2)::

        Ẑ = Z + MHA(LN(Z), LN_β(X_β), LN_β(X_β))           padding source tokens masked out
        Z ← Ẑ + FFN(LN(Ẑ))
    """

    def __init__(self, dim: int, layers: int, heads: int, ffn_mult: float, dropout: float) -> None:
        super().__init__()
        attention = {"heads": heads, "ffn_mult": ffn_mult, "dropout": dropout, "norm": "pre"}
        self.blocks = nn.ModuleList(QueryCrossAttentionBlock(dim, **attention) for _ in range(layers))
        self.source_norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))

    def forward(self, target: Tensor, source: Tensor, source_mask: Tensor | None) -> Tensor:
        for block, norm in zip(self.blocks, self.source_norms, strict=True):
            target = block(target, norm(source), source_mask)
        return target


@register_fusion
class MultimodalTransformer(Fusion):
    """MulT for two modalities: each stream reads the other through crossmodal attention, then attends
    to itself.

        Z_txt = CM_{I→T}(T; I),   Z_img = CM_{T→I}(I; T)       ``cross_layers`` crossmodal blocks each
                                                               (A = softmax(Q Kᵀ/√d) V, Q from the target,
                                                               K, V from the source; see :class:`Crossmodal`)
        S_m = LN(SelfEncoder_m(Z_m))                           ``self_layers`` pre-LN layers per stream
        output: [S_img; S_txt] ∈ R^{(Ni+Nt)×D}, mask [m_I; m_T], padding zeroed

    With more than two modalities the paper concatenates the crossmodal outputs that share a target
    before the self-attention; with two there is one per target. The paper's temporal 1-D convolutions
    and sinusoidal positions are left to the model (projections; ``position_embeddings``), and the head
    pools the output tokens instead of taking the last element of each stream.

    Masks: padding source tokens are never attended to and padding target tokens come out as zeros
    with a ``False`` mask. A sample whose source modality is missing gets no crossmodal update (its
    stream passes through the residual path and the FFNs); a missing target modality's tokens are all
    masked in the output, so the other stream decides. With neither modality every output token is
    masked (the head pools zeros).
    """

    name = "mult"
    description = "MulT: crossmodal attention image→text and text→image, then self-attention per stream"
    kind = "token"
    test_config = {"cross_layers": 1, "self_layers": 1}  # tiny sizes for contract tests

    def __init__(
        self,
        dim: int,
        *,
        cross_layers: int = 2,
        self_layers: int = 1,
        heads: int = 4,
        ffn_mult: float = 4.0,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(dim)
        check_heads(dim, heads)
        if cross_layers < 1:
            raise ValueError(f"cross_layers must be >= 1, got {cross_layers}")
        self.text_reads_image = Crossmodal(dim, cross_layers, heads, ffn_mult, dropout)
        self.image_reads_text = Crossmodal(dim, cross_layers, heads, ffn_mult, dropout)
        self.image_self = transformer_encoder(dim, heads, self_layers, ffn_mult, dropout)
        self.text_self = transformer_encoder(dim, heads, self_layers, ffn_mult, dropout)

    def forward(
        self, image: Tensor, text: Tensor, image_mask: Tensor | None = None, text_mask: Tensor | None = None
    ) -> FusionOutput:
        image_mask, text_mask = mask_or_ones(image, image_mask), mask_or_ones(text, text_mask)
        image_stream = self.image_reads_text(image, text, text_mask)
        text_stream = self.text_reads_image(text, image, image_mask)
        image_stream = self.image_self(image_stream, src_key_padding_mask=padding_keys(image_mask))
        text_stream = self.text_self(text_stream, src_key_padding_mask=padding_keys(text_mask))
        tokens, mask = join_streams((image_stream, text_stream), (image_mask, text_mask))
        return FusionOutput(tokens=tokens, mask=mask)

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        return {
            "cross_layers": IntDistribution(1, 4),
            "self_layers": IntDistribution(1, 2),
            "ffn_mult": CategoricalDistribution([2.0, 4.0]),
            "dropout": FloatDistribution(0.0, 0.3),
        }
