"""Early fusion: one transformer encoder over the concatenated image and text tokens (FLUID Table 1)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fusionzoo.interface import Fusion, FusionOutput
from fusionzoo.layers.attention import check_heads, padding_keys, transformer_encoder
from fusionzoo.layers.modality import ModalityConcat
from fusionzoo.registry import register_fusion

OUTPUT_MODES = ("tokens", "cls")


@register_fusion
class EarlyFusion(Fusion):
    """Token concatenation with modality-type embeddings, then a (pre-LN) transformer encoder.

        X = [c; I + e_image; T + e_text]        (c: learned [CLS] token, only with output="cls")
        Z = LN(Encoder_L(X))                    self-attention with padding keys masked out
        output="tokens": Z over the Ni + Nt modality tokens with their mask (padding zeroed)
        output="cls":    Z_0, one token

    Padded tokens never influence real ones (masked keys) and come out as zeros. A sample with no real
    token at all attends over everything internally and returns an all-False mask (``tokens``) — its
    [CLS] token is still real (``cls``).
    """

    name = "early_fusion"
    description = "Early-Fusion: [I; T] + type embeddings through a transformer encoder"
    kind = "token"
    test_config = {"layers": 1}  # tiny sizes for contract tests

    def __init__(
        self,
        dim: int,
        *,
        layers: int = 2,
        heads: int = 8,
        ffn_mult: float = 4.0,
        dropout: float = 0.1,
        output: str = "tokens",
    ) -> None:
        super().__init__(dim)
        if output not in OUTPUT_MODES:
            raise ValueError(f"output must be one of {', '.join(OUTPUT_MODES)}, got '{output}'")
        check_heads(dim, heads)
        self.output = output
        self.concat = ModalityConcat(dim)
        if output == "cls":
            self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.encoder = transformer_encoder(dim, heads, layers, ffn_mult, dropout)

    def no_weight_decay(self) -> set[str]:
        """The [CLS] token: no weight decay (timm convention)."""
        return {"cls_token"}

    def forward(
        self, image: Tensor, text: Tensor, image_mask: Tensor | None = None, text_mask: Tensor | None = None
    ) -> FusionOutput:
        tokens, mask = self.concat(image, text, image_mask, text_mask)
        if self.output == "cls":
            cls = self.cls_token.expand(tokens.shape[0], -1, -1)
            tokens = torch.cat([cls, tokens], dim=1)
            mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)
        encoded = self.encoder(tokens, src_key_padding_mask=padding_keys(mask))
        if self.output == "cls":
            return FusionOutput(tokens=encoded[:, :1])
        mask = mask & mask.any(1, keepdim=True)
        return FusionOutput(tokens=encoded.masked_fill(~mask.unsqueeze(-1), 0.0), mask=mask)

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        return {
            "layers": IntDistribution(1, 4),
            "ffn_mult": CategoricalDistribution([2.0, 4.0]),
            "dropout": FloatDistribution(0.0, 0.3),
            "output": CategoricalDistribution(["tokens", "cls"]),
        }
