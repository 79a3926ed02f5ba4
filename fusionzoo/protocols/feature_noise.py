"""``feature_noise``: Gaussian noise on the cached tokens, scaled by the features' spread."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from fusionzoo.protocols._tokens import mask_of, token_statistics
from fusionzoo.protocols.base import Protocol, check_rates, register_protocol

WHICH = ("image", "text", "both")


@register_protocol
class FeatureNoise(Protocol):
    """x' = x + σ · s ⊙ ε,  ε ~ N(0, I), on every real token of the chosen modality (``modality``).

    s (E,) is the per-feature standard deviation of the *training* split's tokens (``fit``; without
    it, the std of the batch's own tokens), so σ is in units of the features' spread. Levels are σ
    (``sigmas``, default 0, 0.1, …, 1); padded positions stay untouched; σ = 0 is the clean batch. The
    same ε are drawn at every σ, so the curve varies only with σ.
    """

    name = "feature_noise"
    description = "x + N(0, (σ·std(x))²) on the cached tokens of one or both modalities"
    stages = ("test", "train")
    level_option = "sigmas"
    level_bounds = (0.0, 100.0)
    test_config = {"sigmas": [0.0, 1.0, 4.0]}

    def __init__(
        self,
        *,
        sigmas: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11)),
        modality: str = "both",
        seed: int = 0,
    ) -> None:
        if modality not in WHICH:
            raise ValueError(f"modality must be one of {', '.join(WHICH)}, got {modality!r}")
        self.sigmas = check_rates(self.name, "sigmas", sigmas, 0.0, self.level_bounds[1])
        self.modality, self.seed = modality, int(seed)
        self.std: dict[str, Tensor] = {}

    @property
    def label(self) -> str:
        return self.registry_name if self.modality == "both" else f"{self.registry_name}_{self.modality}"

    def modalities(self) -> tuple[str, ...]:
        return ("image", "text") if self.modality == "both" else (self.modality,)

    def fit(self, data: Any) -> None:
        for modality in self.modalities():
            self.std[modality] = token_statistics(data, modality)[1]

    def apply(self, batch: dict[str, Any], level: float, generator: torch.Generator) -> dict[str, Any]:
        sigma = self.check_level(level)
        noises = {m: torch.randn(batch[m].shape, generator=generator) for m in self.modalities()}
        if sigma == 0.0:
            return batch
        out = dict(batch)
        for modality, noise in noises.items():
            tokens = batch[modality]
            mask = mask_of(batch, modality).to(tokens.device)
            std = self.std.get(modality)
            if std is None:
                real = tokens.float()[mask]
                std = real.std(0) if real.shape[0] > 1 else torch.ones(tokens.shape[-1])
            update = sigma * std.to(tokens.device) * noise.to(tokens.device)
            out[modality] = tokens + (update * mask.unsqueeze(-1)).to(tokens.dtype)
        return out
