"""FLUID: Q-transform per modality, contrastive alignment, per-token gate, Q-bottleneck (arXiv 2508.07264)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from fusionzoo.interface import Fusion, FusionOutput
from fusionzoo.layers.attention import QueryCrossAttention
from fusionzoo.layers.contrastive import ClipContrastiveLoss, duplicate_groups
from fusionzoo.layers.mlp import MLP
from fusionzoo.layers.pooling import any_real, first_token, masked_mean
from fusionzoo.registry import register_fusion


@register_fusion
class FLUID(Fusion):
    """FLUID (Flow-Latent Unified Integration via Token Distillation), §4 of the paper.

        In = QFormer_I(Q1; I),  Tn = QFormer_T(Q2; T)                    Q-transform, (B, l, D), l = queries
        L_con = ½[InfoNCE(ī→t̄) + InfoNCE(t̄→ī)],  ī = mean_l In, t̄ = mean_l Tn, τ = temperature
        a = σ(W2 ReLU(W1 [In; Tn] + b1) + b2) ∈ (0,1)^l                 per-token gate
        F = a ⊙ In + (1 − a) ⊙ Tn
        F' = QFormer_B(Q3; F) ∈ R^{bottleneck_queries × D}             Q-bottleneck

    Each QFormer stacks post-LN learnable-query cross-attention blocks with an FFN
    (:class:`~fusionzoo.layers.QueryCrossAttention`); the bottleneck uses one block. As in the paper
    (``Attention(Q1, I W^K, I W^V)``) the queries do not self-attend: each query is distilled from the
    tokens on its own (the ``qformer`` baseline, BLIP-2-like, adds query self-attention).
    Ablations (paper Table 3): ``contrastive=False`` returns no ``"contrastive"`` aux loss;
    ``qtransform=False`` uses one summary token per modality (l = 1): the [CLS] token where the
    encoder has one, else the masked mean of the tokens (``summary="auto"``; a CNN feature map has
    no [CLS] and its first token is one corner of the image; ``summary="cls"|"mean"`` forces either);
    ``gating=False`` uses the plain mean a = ½ (no gate parameters); ``bottleneck=False`` outputs F
    itself (l tokens).

    Options beyond the paper: ``norm="pre"`` uses pre-LN Q-Former blocks; ``contrastive_positives=
    "duplicates"`` treats items of a batch that share an identical image or text input (e.g. several
    GLAMI-1M products showing one photo) as positives of each other instead of negatives (SupCon
    labels; detected on the projected tokens, so it needs projection dropout 0, the default).

    Missing modality: when a sample has no real image token the gate is forced to a = 0 (F = Tn); no
    real text token forces a = 1 (F = In); the same holds with ``gating=False``. Such samples are left
    out of the contrastive loss. ``extras["gate"]`` holds a ``(B, l)`` (after forcing) when gating.
    """

    name = "fluid"
    description = "FLUID: per-modality Q-Former, CLIP alignment, per-token gate, 2-query bottleneck"
    kind = "token"
    test_config = {"queries": 4, "layers": 1, "bottleneck_queries": 2}  # tiny sizes for contract tests
    default_head = "moe"

    def __init__(
        self,
        dim: int,
        *,
        queries: int = 32,
        layers: int = 2,
        heads: int = 8,
        ffn_mult: float = 4.0,
        dropout: float = 0.1,
        temperature: float = 0.07,
        bottleneck_queries: int = 2,
        gate_hidden_mult: float = 1.0,
        contrastive: bool = True,
        qtransform: bool = True,
        gating: bool = True,
        bottleneck: bool = True,
        summary: str = "auto",
        norm: str = "post",
        contrastive_positives: str = "pairs",
    ) -> None:
        super().__init__(dim)
        if summary not in ("auto", "cls", "mean"):
            raise ValueError(f"summary must be auto, cls or mean, got {summary!r}")
        if contrastive_positives not in ("pairs", "duplicates"):
            raise ValueError(
                f"contrastive_positives must be pairs or duplicates, got {contrastive_positives!r}"
            )
        self.use_contrastive, self.use_qtransform = contrastive, qtransform
        self.use_gating, self.use_bottleneck = gating, bottleneck
        self.summary, self.positives = summary, contrastive_positives
        self.summary_from_cls = {"image": summary != "mean", "text": summary != "mean"}
        attention = {"heads": heads, "ffn_mult": ffn_mult, "dropout": dropout, "norm": norm}
        if qtransform:
            self.image_qformer = QueryCrossAttention(dim, queries, layers, **attention)
            self.text_qformer = QueryCrossAttention(dim, queries, layers, **attention)
        if contrastive:
            self.contrastive_loss = ClipContrastiveLoss(temperature)
        if gating:
            self.gate = MLP(2 * dim, max(1, int(dim * gate_hidden_mult)), 1, activation="relu")
        if bottleneck:
            self.bottleneck = QueryCrossAttention(dim, bottleneck_queries, 1, **attention)

    def configure_inputs(self, *, image_prefix_tokens: int = 0, text_prefix_tokens: int = 0) -> None:
        if self.summary == "auto":  # [CLS] where the encoder produces one, else a pooled token
            self.summary_from_cls = {"image": image_prefix_tokens > 0, "text": text_prefix_tokens > 0}

    def _summary(self, tokens: Tensor, mask: Tensor | None, modality: str) -> Tensor:
        pooled = first_token(tokens, mask) if self.summary_from_cls[modality] else masked_mean(tokens, mask)
        return pooled.unsqueeze(1)

    def forward(
        self, image: Tensor, text: Tensor, image_mask: Tensor | None = None, text_mask: Tensor | None = None
    ) -> FusionOutput:
        has_image = any_real(image_mask, image.shape[0], image.device)
        has_text = any_real(text_mask, text.shape[0], text.device)
        if self.use_qtransform:
            image_q, text_q = self.image_qformer(image, image_mask), self.text_qformer(text, text_mask)
        else:
            image_q = self._summary(image, image_mask, "image")
            text_q = self._summary(text, text_mask, "text")

        aux: dict[str, Tensor] = {}
        if self.use_contrastive:
            groups = (
                duplicate_groups(image, text) if self.positives == "duplicates" and self.training else None
            )
            aux["contrastive"] = self.contrastive_loss(
                image_q.mean(1), text_q.mean(1), has_image & has_text, groups=groups
            )

        if self.use_gating:
            gate = torch.sigmoid(self.gate(torch.cat([image_q, text_q], dim=-1))).squeeze(-1)
        else:
            gate = image_q.new_full(image_q.shape[:2], 0.5)
        only_image = (has_image & ~has_text).unsqueeze(1)
        only_text = (~has_image & has_text).unsqueeze(1)
        gate = torch.where(only_image, 1.0, torch.where(only_text, 0.0, gate))
        fused = gate.unsqueeze(-1) * image_q + (1.0 - gate.unsqueeze(-1)) * text_q

        tokens = self.bottleneck(fused) if self.use_bottleneck else fused
        extras = {"gate": gate.detach()} if self.use_gating else {}
        return FusionOutput(tokens=tokens, aux_losses=aux, extras=extras)

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        return {
            "queries": CategoricalDistribution([8, 16, 32, 64]),
            "layers": IntDistribution(1, 4),
            "ffn_mult": CategoricalDistribution([2.0, 4.0]),
            "dropout": FloatDistribution(0.0, 0.3),
            "temperature": FloatDistribution(0.02, 0.2, log=True),
        }
