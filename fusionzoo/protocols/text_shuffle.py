"""``text_shuffle``: a fraction p of each text's cached tokens swap places among themselves."""

from __future__ import annotations

from typing import Any

import torch

from fusionzoo.protocols._tokens import mask_of
from fusionzoo.protocols.base import DEFAULT_RATES, Protocol, check_rates, register_protocol


@register_protocol
class TextShuffle(Protocol):
    """For a text of L real tokens: k = round(p·L) positions S are chosen at random and the tokens at S
    are permuted among themselves (a random permutation of S); the rest keep their place.

    p = 1 shuffles the whole text, p = 0 is the clean batch. Only order changes, never content: a
    fusion without position information (mean pooling, attention without position embeddings) is
    invariant to it by construction, which is what this protocol measures.
    """

    name = "text_shuffle"
    description = "permute a fraction p of each text's cached tokens among themselves"
    stages = ("test", "train")
    test_config = {"rates": [0.0, 0.5, 1.0]}

    def __init__(self, *, rates: tuple[float, ...] = DEFAULT_RATES, seed: int = 0) -> None:
        self.rates = check_rates(self.name, "rates", rates)
        self.seed = int(seed)

    def apply(self, batch: dict[str, Any], level: float, generator: torch.Generator) -> dict[str, Any]:
        level = self.check_level(level)
        mask = mask_of(batch, "text")
        width = mask.shape[1]
        keys = torch.rand(mask.shape[0], width, generator=generator)  # which positions are chosen
        perm_keys = torch.rand(mask.shape[0], width, generator=generator)  # how they are permuted
        if level == 0.0:
            return batch
        text = batch["text"]
        order = torch.arange(width).repeat(mask.shape[0], 1)
        lengths = mask.sum(1)
        for b in range(mask.shape[0]):
            real = torch.nonzero(mask[b]).flatten()
            k = int(round(level * int(lengths[b])))
            if k < 2:
                continue
            chosen = real[keys[b, real].argsort()[:k]]
            order[b, chosen] = chosen[perm_keys[b, :k].argsort()]
        out = dict(batch)
        out["text"] = torch.gather(text, 1, order.to(text.device).unsqueeze(-1).expand_as(text))
        return out
