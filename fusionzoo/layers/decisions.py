"""Decision-level fusion: combine per-token decisions (logits) into one prediction per sample.

A fusion that returns ``FusionOutput(decisions="logits" | "probs", decision_weights=w)`` asks the model
to classify each real token on its own with the head (``ℓ_n = head(x_n) ∈ R^C``) and to combine the
decisions, with the weights renormalised over the real tokens (``m_n``):

    ŵ_n = m_n w_n / Σ_k m_k w_k                          (w = 1 when no weights are given)
    "logits":  logits = Σ_n ŵ_n ℓ_n
    "probs":   logits = log Σ_n ŵ_n softmax(ℓ_n)         (log-probabilities: softmax(logits) = the mixture)

so a token whose mask is ``False`` (a missing modality) has no say and the others decide. A sample
without any real token uses all of its tokens (its output stays finite).
"""

from __future__ import annotations

import torch
from torch import Tensor

from fusionzoo.layers.pooling import mask_or_ones

__all__ = ["DECISION_MODES", "combine_decisions", "deciding_tokens"]

DECISION_MODES = ("logits", "probs")


def deciding_tokens(tokens: Tensor, mask: Tensor | None) -> Tensor:
    """``(B, N)`` bool: the tokens whose decisions count (the real ones; all of a sample without any)."""
    real = mask_or_ones(tokens, mask)
    return real | ~real.any(1, keepdim=True)


def combine_decisions(logits: Tensor, mode: str, deciding: Tensor, weights: Tensor | None = None) -> Tensor:
    """``logits (B, N, C)`` per-token decisions → ``(B, C)``; ``deciding (B, N)`` from :func:`deciding_tokens`.

    ``weights (B, N)``: positive weights of the decisions (``None``: equal). Decisions of tokens that
    do not decide may hold anything finite; they get weight 0.
    """
    if mode not in DECISION_MODES:
        raise ValueError(f"decisions must be one of {', '.join(DECISION_MODES)}, got {mode!r}")
    raw = torch.ones_like(logits[..., 0]) if weights is None else weights.to(logits.dtype)
    raw = torch.where(deciding, raw, torch.ones_like(raw))  # a constant where masked: no NaN gradient
    share = raw * deciding.to(raw.dtype)
    share = share / share.sum(1, keepdim=True)
    if mode == "logits":
        return (share.unsqueeze(-1) * logits).sum(1)
    safe = torch.where(deciding, share, torch.ones_like(share))  # log(0)'s gradient would be NaN
    log_share = torch.where(deciding, safe.log(), torch.full_like(share, float("-inf")))
    return torch.logsumexp(log_share.unsqueeze(-1) + logits.log_softmax(-1), dim=1)
