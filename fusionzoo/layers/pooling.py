"""Masked pooling of token sequences ``(B, N, D)`` to vectors ``(B, D)``.

A sample whose tokens are all masked pools to zeros (never NaN), so a missing modality stays finite.
"""

from __future__ import annotations

import torch
from torch import Tensor

POOL_MODES = ("mean", "max", "cls")


def mask_or_ones(tokens: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
    if mask.shape != tokens.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match tokens {tuple(tokens.shape[:2])}")
    return mask.bool()


def masked_mean(tokens: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean over real tokens: ``Σ_n m_n x_n / max(1, Σ_n m_n)``."""
    m = mask_or_ones(tokens, mask).to(tokens.dtype).unsqueeze(-1)
    return (tokens * m).sum(1) / m.sum(1).clamp_min(1.0)


def masked_max(tokens: Tensor, mask: Tensor | None = None) -> Tensor:
    """Element-wise max over real tokens; zeros for a sample with no real token."""
    m = mask_or_ones(tokens, mask)
    filled = tokens.masked_fill(~m.unsqueeze(-1), torch.finfo(tokens.dtype).min)
    out = filled.max(dim=1).values
    return torch.where(m.any(1, keepdim=True), out, torch.zeros_like(out))


def first_token(tokens: Tensor, mask: Tensor | None = None) -> Tensor:
    """The first ([CLS]) token, zeroed where it is masked."""
    m = mask_or_ones(tokens, mask)
    return tokens[:, 0] * m[:, :1].to(tokens.dtype)


def pool_tokens(tokens: Tensor, mask: Tensor | None = None, mode: str = "mean") -> Tensor:
    """Pool ``(B, N, D)`` to ``(B, D)`` with ``mode`` in :data:`POOL_MODES`."""
    if mode == "mean":
        return masked_mean(tokens, mask)
    if mode == "max":
        return masked_max(tokens, mask)
    if mode == "cls":
        return first_token(tokens, mask)
    raise ValueError(f"unknown pool mode '{mode}'; expected one of {', '.join(POOL_MODES)}")


def any_real(mask: Tensor | None, batch: int, device: torch.device) -> Tensor:
    """``(B,)`` bool: does the sample have at least one real token?"""
    if mask is None:
        return torch.ones(batch, dtype=torch.bool, device=device)
    return mask.bool().any(1)
