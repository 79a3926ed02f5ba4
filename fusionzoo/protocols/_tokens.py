"""Shared blocks of the token protocols: removing a modality (imputation), training-split statistics."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from fusionzoo.protocols.base import DEFAULT_RATES, Protocol, check_rates

IMPUTATIONS = ("mask", "zeros", "mean")
MODALITIES = ("image", "text")
STAT_ROWS = 4096  # rows of the training split read for a statistic (seeded choice when larger)


def mask_of(batch: dict[str, Any], modality: str) -> Tensor:
    """The batch's ``(B, N)`` bool mask of ``modality`` (all True when the batch has none)."""
    tokens = batch[modality]
    mask = batch.get(f"{modality}_mask")
    return torch.ones(tokens.shape[:2], dtype=torch.bool) if mask is None else mask.bool()


def remove_modality(
    batch: dict[str, Any], modality: str, drop: Tensor, imputation: str, mean: Tensor | None
) -> dict[str, Any]:
    """A copy of ``batch`` where the samples of ``drop`` (B,) bool lose ``modality``.

    ``mask``: tokens zeroed and every position masked out (the fusion sees a missing modality);
    ``zeros``: tokens replaced by zero vectors, mask unchanged (zero imputation);
    ``mean``: tokens replaced by the training split's mean token, mask unchanged (mean imputation).
    """
    if not bool(drop.any()):
        return batch
    out = dict(batch)
    tokens = batch[modality].clone()
    rows = drop.to(tokens.device)
    if imputation == "mean":
        if mean is None:
            raise RuntimeError("imputation=mean needs the training split's mean token: call fit(data) first")
        tokens[rows] = mean.to(tokens.dtype).to(tokens.device)
    else:
        tokens[rows] = 0.0
    out[modality] = tokens
    if imputation == "mask":
        mask = mask_of(batch, modality).clone()
        mask[rows] = False
        out[f"{modality}_mask"] = mask
    return out


def training_rows(data: Any, limit: int = STAT_ROWS) -> Tensor:
    """Row indices of the training split used for statistics (all, or a seeded sample of ``limit``)."""
    n = data.size("train")
    if n <= limit:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:limit].sort().values


def token_statistics(data: Any, modality: str) -> tuple[Tensor, Tensor]:
    """``(mean, std)`` (E,) of the real tokens of ``modality`` over the training split (float32)."""
    total = None
    count = 0
    square = None
    for indices in training_rows(data).split(512):
        batch = data.batch("train", indices)
        tokens = batch[modality].float()[mask_of(batch, modality)]
        total = tokens.sum(0) if total is None else total + tokens.sum(0)
        square = (tokens**2).sum(0) if square is None else square + (tokens**2).sum(0)
        count += tokens.shape[0]
    if total is None or count == 0:
        raise RuntimeError(f"the training split has no {modality} tokens to compute statistics from")
    mean = total / count
    std = (square / count - mean**2).clamp_min(0).sqrt()
    return mean, std


class MissingModality(Protocol):
    """Base of ``missing_image``/``missing_text``: each sample loses ``modality`` with probability η.

    u_b ~ U(0, 1) per sample (one draw per sample from the seeded generator);  missing_b = u_b < η.
    The same u_b are drawn at every level, so the samples missing at η are also missing at η' > η;
    η = 0 leaves the batch unchanged and η = 1 removes the modality from every sample.
    """

    stages = ("test", "train")
    modality: str = "image"
    test_config = {"rates": [0.0, 0.5, 1.0]}

    def __init__(
        self, *, rates: tuple[float, ...] = DEFAULT_RATES, imputation: str = "mask", seed: int = 0
    ) -> None:
        if imputation not in IMPUTATIONS:
            raise ValueError(f"imputation must be one of {', '.join(IMPUTATIONS)}, got {imputation!r}")
        self.rates = check_rates(self.name, "rates", rates)
        self.imputation, self.seed = imputation, int(seed)
        self.mean: dict[str, Tensor] = {}

    def fit(self, data: Any) -> None:
        if self.imputation == "mean":
            self.mean[self.modality] = token_statistics(data, self.modality)[0]

    def apply(self, batch: dict[str, Any], level: float, generator: torch.Generator) -> dict[str, Any]:
        level = self.check_level(level)
        u = torch.rand(batch[self.modality].shape[0], generator=generator)
        if level == 0.0:
            return batch
        drop = u < level
        return remove_modality(batch, self.modality, drop, self.imputation, self.mean.get(self.modality))
