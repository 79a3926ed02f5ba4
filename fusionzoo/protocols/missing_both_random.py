"""``missing_both_random``: a fraction η of samples lose one modality, image or text at random."""

from __future__ import annotations

from typing import Any

import torch

from fusionzoo.protocols._tokens import MissingModality, remove_modality, token_statistics
from fusionzoo.protocols.base import register_protocol


@register_protocol
class MissingBothRandom(MissingModality):
    """The "missing-both" setting of the missing-aware-prompts protocol (Lee et al., CVPR 2023).

    u_b ~ U(0, 1), s_b ~ Bernoulli(½) per sample;  missing_b = u_b < η;
    image removed ⇔ missing_b ∧ s_b,  text removed ⇔ missing_b ∧ ¬s_b
    so about η/2 of the samples lose the image and η/2 the text; no sample loses both. Same
    imputations as ``missing_image`` (``mask`` | ``zeros`` | ``mean``); nested across η.
    """

    name = "missing_both_random"
    description = "a fraction η of samples lose one modality (image or text, ½ each)"

    def fit(self, data: Any) -> None:
        if self.imputation == "mean":
            for modality in ("image", "text"):
                self.mean[modality] = token_statistics(data, modality)[0]

    def apply(self, batch: dict[str, Any], level: float, generator: torch.Generator) -> dict[str, Any]:
        level = self.check_level(level)
        n = batch["image"].shape[0]
        u = torch.rand(n, generator=generator)
        pick_image = torch.rand(n, generator=generator) < 0.5
        if level == 0.0:
            return batch
        missing = u < level
        out = remove_modality(batch, "image", missing & pick_image, self.imputation, self.mean.get("image"))
        return remove_modality(out, "text", missing & ~pick_image, self.imputation, self.mean.get("text"))
