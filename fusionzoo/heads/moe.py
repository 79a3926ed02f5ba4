"""Sparse mixture-of-experts head (FLUID's classifier)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fusionzoo.interface import Head, HeadOutput
from fusionzoo.layers.moe import ExpertMLPs, load_balance_loss, router_z_loss
from fusionzoo.layers.pooling import masked_mean
from fusionzoo.registry import register_head

ROUTING_MODES = ("token", "pooled")


@register_head
class MoEHead(Head):
    """Top-k mixture of expert MLPs, routed per token (then averaged) or on the pooled vector.

    The tokens are layer-normalised first (``x ← LN(x)``, shared by router and experts, as the MLP head
    normalises its hidden layer: without it the experts learn at the pace of an MLP without LayerNorm).
    Router (as FLUID's code): ``z = W_b · Dropout(ReLU(LN(W_a x)))``, ``p = softmax(z)`` over ``E`` experts;
    ``S`` = the ``top_k`` experts of ``p``, weights renormalised ``w_e = p_e / Σ_{j∈S} p_j`` (with
    ``top_k=1`` the raw ``p_e`` is kept, Switch-style, so the router still gets a task gradient):

        logits_n = Σ_{e∈S_n} w_{n,e} · E_e(x_n),      E_e = Linear → GELU → Dropout → Linear
        routing="token":  logits = (1/|real|) Σ_{n real} logits_n
        routing="pooled": logits = logits(mean_{n real} x_n)

    Aux losses, weighted by the trainer with λ from ``RunConfig.loss_weights`` / ``paper_loss``, else
    :attr:`aux_loss_weights` (Switch Transformer's α = 0.01, ST-MoE's c_z = 0.001; at λ = 1 they pin the
    router at uniform probabilities, top-k is then decided by noise and the experts see random subsets):
    ``load_balance = E · Σ_e f_e · P_e`` with ``f_e`` the
    fraction of routed tokens whose **top-1** expert is ``e`` (Switch Transformer) and ``P_e`` the mean
    router probability; ``router_z = mean (logsumexp z)²``. Only real (unmasked) tokens are routed and
    counted; a sample without any real token routes all its tokens. No routing noise: eval is
    deterministic. Extras: ``routing_probs (B, N, E)`` (``N = 1`` when pooled, zeros on padding) and
    ``expert_counts (E,)`` (top-k assignments per expert in the batch).
    """

    name = "moe"
    description = "sparse top-k mixture of expert MLPs (FLUID's head), load-balance + router-z aux losses"
    test_config = {"experts": 4, "top_k": 2}  # tiny sizes for contract tests
    aux_loss_weights = {"load_balance": 0.01, "router_z": 0.001}  # default λ (Switch, ST-MoE)

    def __init__(
        self,
        dim: int,
        num_classes: int,
        *,
        experts: int = 16,
        top_k: int = 2,
        hidden_mult: float = 2.0,
        dropout: float = 0.1,
        routing: str = "token",
    ) -> None:
        super().__init__(dim, num_classes)
        if experts < 1:
            raise ValueError(f"experts must be >= 1, got {experts}")
        if not 1 <= top_k <= experts:
            raise ValueError(f"top_k must be in 1..experts={experts}, got {top_k}")
        if routing not in ROUTING_MODES:
            raise ValueError(f"routing must be one of {', '.join(ROUTING_MODES)}, got '{routing}'")
        self.num_experts, self.top_k, self.routing = experts, top_k, routing
        self.norm = nn.LayerNorm(dim)
        self.router = nn.Sequential(
            nn.Linear(dim, dim), nn.LayerNorm(dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, experts)
        )
        self.experts = ExpertMLPs(experts, dim, max(1, int(dim * hidden_mult)), num_classes, dropout)

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> HeadOutput:
        batch, _, dim = tokens.shape
        if self.routing == "pooled":
            tokens, mask = masked_mean(tokens, mask).unsqueeze(1), None
        tokens = self.norm(tokens)
        n_tok = tokens.shape[1]
        flat = tokens.reshape(batch * n_tok, dim)
        real = None if mask is None else mask.bool() | ~mask.bool().any(1, keepdim=True)
        routed = flat if real is None else flat[real.reshape(-1)]
        router_logits = self.router(routed).float()
        probs = router_logits.softmax(-1)
        top_p, top_e = probs.topk(self.top_k, dim=-1)
        weights = top_p / top_p.sum(-1, keepdim=True) if self.top_k > 1 else top_p
        expert_logits = self.experts(routed, top_e, weights)

        if real is None:
            logits = expert_logits.view(batch, n_tok, -1).mean(1)
            routing_probs = probs.detach().view(batch, n_tok, -1)
        else:
            real_flat = real.reshape(-1)
            per_token = expert_logits.new_zeros(batch * n_tok, self.num_classes)
            per_token = per_token.index_put((real_flat,), expert_logits)
            logits = per_token.view(batch, n_tok, -1).sum(1) / real.sum(1, keepdim=True).to(per_token.dtype)
            routing_probs = probs.new_zeros(batch * n_tok, self.num_experts)
            routing_probs[real_flat] = probs.detach()
            routing_probs = routing_probs.view(batch, n_tok, -1)
        return HeadOutput(
            logits=logits,
            aux_losses={
                "load_balance": load_balance_loss(probs, top_e[:, 0]),
                "router_z": router_z_loss(router_logits),
            },
            extras={
                "routing_probs": routing_probs,
                "expert_counts": torch.bincount(top_e.reshape(-1), minlength=self.num_experts),
            },
        )

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        return {
            "experts": CategoricalDistribution([4, 8, 16]),
            "top_k": CategoricalDistribution([1, 2]),
            "hidden_mult": CategoricalDistribution([1.0, 2.0, 4.0]),
            "dropout": FloatDistribution(0.0, 0.5),
        }
