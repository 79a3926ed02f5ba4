"""Hard (one-of-K) routing for fusions that pick a path per sample.

Training: straight-through Gumbel-softmax — the forward pass uses the one-hot sample
``g = onehot(argmax_k (z_k + G_k))``, ``G_k ~ Gumbel(0, 1)``, the backward pass the gradient of
``softmax((z + G)/τ)``. Evaluation: ``g = onehot(argmax_k z_k)``, no sampling (deterministic).
Choices that are not allowed for a sample (e.g. a route that needs a missing modality) get
probability 0; a sample with no allowed choice may take any.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def masked_logits(logits: Tensor, allowed: Tensor | None) -> Tensor:
    """``logits (B, K)`` with disallowed choices set to the dtype's minimum (rows with none allowed kept)."""
    if allowed is None:
        return logits
    allowed = allowed.bool() | ~allowed.bool().any(-1, keepdim=True)
    return logits.masked_fill(~allowed, torch.finfo(logits.dtype).min)


def hard_route(
    logits: Tensor, allowed: Tensor | None = None, *, training: bool, tau: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Return ``(choice (B, K) one-hot, straight-through in training; probs (B, K) = softmax(masked z))``."""
    logits = masked_logits(logits, allowed)
    probs = logits.softmax(-1)
    if training:
        choice = F.gumbel_softmax(logits, tau=tau, hard=True, dim=-1)
    else:
        choice = F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    return choice, probs
