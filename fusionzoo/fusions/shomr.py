"""SHOMR: soft (confidence-weighted) or hard (routed vision / text / both) modality fusion."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fusionzoo.fusions._vector import VectorFusion
from fusionzoo.layers.attention import QueryCrossAttentionBlock
from fusionzoo.layers.mlp import MLP
from fusionzoo.layers.pooling import masked_mean
from fusionzoo.layers.routing import hard_route, masked_logits
from fusionzoo.registry import register_fusion

MODES = ("soft", "hard")


@register_fusion
class SHOMR(VectorFusion):
    """Soft / hard modality routing over the pooled vectors, finished by self-attention.

    Both modes form a query ``q`` from the allowed modalities and run one post-LN self-attention
    block over ``{q, v, t}`` (restricted to the allowed ones), keeping q's output:

        z = SA(q; {q} ∪ {v, t}|allowed),   SA(q; S) = LN(H + FFN(H)),  H = LN(q + MHA(q, S, S))

    soft: confidences ``α = softmax([w_v·v + b_v, w_t·t + b_t])`` over the present modalities,
          ``q = α_v v + α_t t`` (confidence-weighted sum), allowed = present modalities.
    hard: router ``r = softmax(MLP([v; t]))`` over {vision, text, both}; ``g = onehot`` of a
          straight-through Gumbel-softmax sample in training and of ``argmax r`` in eval;
          ``z = Σ_k g_k z_k`` where route k allows only v (q = v), only t (q = t) or both
          (q = ½(v + t)). Routes needing a missing modality are disabled.

    Extras: ``confidence (B, 2)`` (soft) or ``router_probs (B, 3)`` and ``route (B,)`` (hard; 0 vision,
    1 text, 2 both).
    """

    name = "shomr"
    description = "SHOMR: confidence-weighted (soft) or routed vision/text/both (hard) + self-attention"

    def __init__(
        self,
        dim: int,
        *,
        mode: str = "soft",
        heads: int = 4,
        ffn_mult: float = 4.0,
        dropout: float = 0.1,
        tau: float = 1.0,
        pool: str = "mean",
    ) -> None:
        super().__init__(dim, pool=pool)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got '{mode}'")
        self.mode, self.tau = mode, tau
        if mode == "soft":
            self.confidence = nn.ModuleList([nn.Linear(dim, 1), nn.Linear(dim, 1)])
        else:
            self.router = MLP(2 * dim, dim, 3, activation="relu")
        self.block = QueryCrossAttentionBlock(dim, heads=heads, ffn_mult=ffn_mult, dropout=dropout)

    def _attend(self, query: Tensor, v: Tensor, t: Tensor, allowed: Tensor) -> Tensor:
        tokens = torch.stack([query, v, t], dim=1)
        mask = torch.cat([allowed.new_ones(allowed.shape[0], 1), allowed], dim=1)
        return self.block(query.unsqueeze(1), tokens, mask).squeeze(1)

    def fuse(self, v: Tensor, t: Tensor, has_image: Tensor, has_text: Tensor) -> Any:
        present = torch.stack([has_image, has_text], dim=1)
        if self.mode == "soft":
            scores = torch.cat([self.confidence[0](v), self.confidence[1](t)], dim=1)
            alpha = masked_logits(scores, present).softmax(-1)
            query = alpha[:, :1] * v + alpha[:, 1:] * t
            return self._attend(query, v, t, present), {}, {"confidence": alpha.detach()}

        allowed_routes = torch.stack([has_image, has_text, has_image & has_text], dim=1)
        choice, probs = hard_route(
            self.router(torch.cat([v, t], dim=-1)), allowed_routes, training=self.training, tau=self.tau
        )
        # route k's view of the pair: vision only, text only, both — run all three as one batch
        route_masks = present.new_tensor([[True, False], [False, True], [True, True]])
        masks = route_masks.unsqueeze(1).expand(-1, v.shape[0], -1)  # (3, B, 2)
        pair = torch.stack([v, t], dim=1)
        queries = torch.stack([masked_mean(pair, m) for m in masks])  # (3, B, D)
        routed = self._attend(
            queries.flatten(0, 1), v.repeat(3, 1), t.repeat(3, 1), masks.flatten(0, 1)
        ).view(3, *v.shape)
        fused = torch.einsum("bk,kbd->bd", choice.to(routed.dtype), routed)
        return fused, {}, {"router_probs": probs.detach(), "route": choice.argmax(-1)}

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        return {
            "mode": CategoricalDistribution(["soft", "hard"]),
            "ffn_mult": CategoricalDistribution([1.0, 2.0, 4.0]),
            "dropout": FloatDistribution(0.0, 0.5),
        }
