"""Multimodal Bottleneck Transformer, MBT (Nagrani et al., NeurIPS 2021): fusion through bottleneck tokens."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fusionzoo.interface import Fusion, FusionOutput
from fusionzoo.layers.attention import check_heads, encoder_layer, padding_keys
from fusionzoo.layers.modality import join_streams
from fusionzoo.layers.pooling import mask_or_ones
from fusionzoo.registry import register_fusion


@register_fusion
class BottleneckTransformer(Fusion):
    """Per-modality transformer layers that exchange information only through shared bottleneck tokens.

    With streams z_img⁰ = I, z_txt⁰ = T, ``layers`` = L pre-LN self-attention layers per modality
    (own weights θ_m^l), fusion from layer L_f = ``fusion_layer`` on, ``bottlenecks`` = n_b tokens:

        l < L_f:  z_m^{l+1} = Layer_m^l(z_m^l)                                   no cross-modal flow
        z_fsn^{L_f} = b ∈ R^{n_b×D}                                              learned initial tokens
        l ≥ L_f:  [z_m^{l+1} ‖ ẑ_fsn,m^{l+1}] = Layer_m^l([z_m^l ‖ z_fsn^l])    m ∈ {img, txt}
                  z_fsn^{l+1} = mean_m ẑ_fsn,m^{l+1}
        output:   [LN_img(z_img^L); LN_txt(z_txt^L)] ∈ R^{(Ni+Nt)×D}, mask [m_I; m_T], padding zeroed

    So each modality's tokens attend only to themselves and the n_b bottleneck tokens: whatever one
    modality learns of the other passes through those n_b tokens (the paper's point: the model has to
    condense what it shares). The paper classifies each modality's [CLS] token and averages the
    logits; here the head pools the output tokens of both streams. As in the paper (and its code),
    the bottleneck written by the last layer is not part of the output, so a stream first sees the
    other modality at layer L_f + 1: ``fusion_layer`` must be at most L − 2 (with L_f = L − 1 the streams
    would read only the learned initial tokens and exchange nothing).

    Missing modality: the bottleneck update is averaged over the present modalities only (both when
    neither is present), so a missing modality writes nothing into the bottleneck; its own tokens are
    masked in the output. Padding tokens are never attended to; a stream without any real token
    attends over all of its tokens (finite) and is masked out.
    """

    name = "mbt"
    description = (
        "MBT: per-modality transformer layers sharing only n_b bottleneck tokens from fusion_layer on"
    )
    kind = "token"
    test_config = {"layers": 2, "fusion_layer": 0, "bottlenecks": 2}  # tiny sizes for contract tests

    def __init__(
        self,
        dim: int,
        *,
        layers: int = 3,
        fusion_layer: int = 1,
        bottlenecks: int = 4,
        heads: int = 4,
        ffn_mult: float = 4.0,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(dim)
        check_heads(dim, heads)
        if layers < 2:
            raise ValueError(
                f"layers must be >= 2 (one layer writes the bottleneck, a later one reads it), got {layers}"
            )
        if not 0 <= fusion_layer <= layers - 2:
            raise ValueError(
                f"fusion_layer must be in 0..layers-2={layers - 2} (the first layer that fuses; from "
                f"layers-1 on the streams would exchange nothing), got {fusion_layer}"
            )
        if bottlenecks < 1:
            raise ValueError(f"bottlenecks must be >= 1, got {bottlenecks}")
        self.fusion_layer = fusion_layer
        self.image_layers = nn.ModuleList(encoder_layer(dim, heads, ffn_mult, dropout) for _ in range(layers))
        self.text_layers = nn.ModuleList(encoder_layer(dim, heads, ffn_mult, dropout) for _ in range(layers))
        self.bottleneck = nn.Parameter(torch.randn(bottlenecks, dim) * 0.02)
        self.image_norm, self.text_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def no_weight_decay(self) -> set[str]:
        """The initial bottleneck tokens are embeddings: no weight decay (timm convention)."""
        return {"bottleneck"}

    def step(
        self,
        index: int,
        streams: tuple[Tensor, Tensor],
        masks: tuple[Tensor, Tensor],
        bottleneck: Tensor | None,
    ) -> tuple[tuple[Tensor, Tensor], Tensor | None]:
        """Layer ``index`` on both streams; ``bottleneck (B, n_b, D)`` from ``fusion_layer`` on, else None."""
        layers = (self.image_layers[index], self.text_layers[index])
        if bottleneck is None:
            out = tuple(
                layer(z, src_key_padding_mask=padding_keys(m))
                for layer, z, m in zip(layers, streams, masks, strict=True)
            )
            return (out[0], out[1]), None
        always = torch.ones(bottleneck.shape[:2], dtype=torch.bool, device=bottleneck.device)
        new_streams, updates = [], []
        for layer, z, m in zip(layers, streams, masks, strict=True):
            keys = torch.cat([m, always], dim=1)  # the bottleneck is always real: no empty rows
            out = layer(torch.cat([z, bottleneck], dim=1), src_key_padding_mask=~keys)
            new_streams.append(out[:, : z.shape[1]])
            updates.append(out[:, z.shape[1] :])
        present = torch.stack([m.any(1) for m in masks], dim=1)
        present = (present | ~present.any(1, keepdim=True)).to(bottleneck.dtype)  # neither: both
        weights = (present / present.sum(1, keepdim=True)).unsqueeze(-1).unsqueeze(-1)
        fused = (torch.stack(updates, dim=1) * weights).sum(1)
        return (new_streams[0], new_streams[1]), fused

    def encode(
        self,
        image: Tensor,
        text: Tensor,
        image_mask: Tensor | None = None,
        text_mask: Tensor | None = None,
        depth: int | None = None,
    ) -> tuple[tuple[Tensor, Tensor], Tensor | None]:
        """The streams (before the final norms) and the bottleneck after the first ``depth`` layers (all)."""
        masks = (mask_or_ones(image, image_mask), mask_or_ones(text, text_mask))
        streams, bottleneck = (image, text), None
        for index in range(len(self.image_layers) if depth is None else depth):
            if index == self.fusion_layer:
                bottleneck = self.bottleneck.unsqueeze(0).expand(image.shape[0], -1, -1)
            streams, bottleneck = self.step(index, streams, masks, bottleneck)
        return streams, bottleneck

    def forward(
        self, image: Tensor, text: Tensor, image_mask: Tensor | None = None, text_mask: Tensor | None = None
    ) -> FusionOutput:
        (image_stream, text_stream), _ = self.encode(image, text, image_mask, text_mask)
        masks = (mask_or_ones(image, image_mask), mask_or_ones(text, text_mask))
        tokens, mask = join_streams((self.image_norm(image_stream), self.text_norm(text_stream)), masks)
        return FusionOutput(tokens=tokens, mask=mask)

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        return {
            "layers": IntDistribution(3, 4),
            "fusion_layer": CategoricalDistribution([0, 1]),
            "bottlenecks": CategoricalDistribution([2, 4, 8]),
            "dropout": FloatDistribution(0.0, 0.3),
        }
