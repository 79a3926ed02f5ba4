"""``text_token_drop``: each cached text token is dropped independently with probability p."""

from __future__ import annotations

from typing import Any

import torch

from fusionzoo.protocols._tokens import mask_of
from fusionzoo.protocols.base import DEFAULT_RATES, Protocol, check_rates, register_protocol


@register_protocol
class TextTokenDrop(Protocol):
    """u_bj ~ U(0, 1) per text token; a real token j of sample b is dropped ⇔ u_bj < p.

    A dropped token is zeroed and masked out; at p = 1 every text is empty (missing text, which the
    ``(B,·,D)`` contract handles). Levels: ``rates`` (default 0, 0.1, …, 1), nested across p.
    """

    name = "text_token_drop"
    description = "drop each cached text token with probability p (zeroed and masked)"
    stages = ("test", "train")
    test_config = {"rates": [0.0, 0.5, 1.0]}

    def __init__(self, *, rates: tuple[float, ...] = DEFAULT_RATES, seed: int = 0) -> None:
        self.rates = check_rates(self.name, "rates", rates)
        self.seed = int(seed)

    def apply(self, batch: dict[str, Any], level: float, generator: torch.Generator) -> dict[str, Any]:
        level = self.check_level(level)
        u = torch.rand(batch["text"].shape[:2], generator=generator)
        if level == 0.0:
            return batch
        mask = mask_of(batch, "text")
        drop = (u < level) & mask
        out = dict(batch)
        out["text"] = batch["text"].masked_fill(drop.unsqueeze(-1).to(batch["text"].device), 0.0)
        out["text_mask"] = mask & ~drop
        return out
