"""``image_corruption``: ImageNet-C corruptions of the raw images (re-encoded into the feature cache)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from fusionzoo.protocols._raw import draw_seeds, missing_extra, seeded_global_rngs
from fusionzoo.protocols.base import Protocol, check_rates, register_protocol

FAST_CORRUPTIONS = ("gaussian_noise", "motion_blur", "jpeg_compression", "brightness")


def corruption_names() -> list[str]:
    try:
        from imagecorruptions import get_corruption_names
    except ImportError as exc:
        raise missing_extra("imagecorruptions (imagecorruptions-imaug)", exc) from None
    return list(get_corruption_names("all"))


@register_protocol
class ImageCorruption(Protocol):
    """x' = c_s(x): corruption ``corruption`` of Hendrycks & Dietterich (ICLR 2019) at severity s ∈ 1..5,
    from the ``imagecorruptions`` package (its maintained fork ``imagecorruptions-imaug``).

    Applied to each test image at the encoder's input resolution (after the resize/crop, before
    normalisation, as ImageNet-C does); the corrupted test split is encoded once per (encoder,
    corruption, severity, seed) into the feature cache. Each image's noise is seeded from ``seed`` and
    the image's own pixels, so it does not depend on batching or order. Levels: ``severities``
    (default 0..5, 0 = clean). Suggested set: gaussian_noise, motion_blur, jpeg_compression, brightness.
    """

    name = "image_corruption"
    description = "ImageNet-C image corruptions (imagecorruptions) at severities 1-5, re-encoded"
    needs_raw = True
    target = "raw"
    raw_modalities = ("image",)
    level_option = "severities"
    level_bounds = (0.0, 5.0)
    test_config = {"severities": [0, 3, 5]}

    def __init__(
        self,
        *,
        corruption: str = "gaussian_noise",
        severities: tuple[int, ...] = (0, 1, 2, 3, 4, 5),
        seed: int = 0,
    ) -> None:
        names = corruption_names()
        if corruption not in names:
            raise ValueError(f"corruption {corruption!r} is not one of {', '.join(names)}")
        grid = check_rates(self.name, "severities", severities, 0, 5)
        if any(v != int(v) for v in grid):
            raise ValueError(f"severities must be integers 0..5, got {list(grid)}")
        self.corruption, self.severities, self.seed = corruption, tuple(int(v) for v in grid), int(seed)

    @property
    def label(self) -> str:
        return f"{self.registry_name}_{self.corruption}"

    def corrupt(self, image: Any, severity: int, seed: int) -> Any:
        """One image (PIL or (H, W, 3) uint8 array) corrupted at ``severity``, same type back."""
        from imagecorruptions import corrupt

        array = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.uint8)
        with seeded_global_rngs(seed):
            out = corrupt(array, corruption_name=self.corruption, severity=severity)
        out = np.clip(np.asarray(out), 0, 255).astype(np.uint8)
        return Image.fromarray(out) if isinstance(image, Image.Image) else out

    def apply(self, batch: dict[str, Any], level: float, generator: torch.Generator) -> dict[str, Any]:
        severity = self.check_level(level)
        if severity != int(severity):
            raise ValueError(f"protocol '{self.name}': severity must be an integer, got {level}")
        images = list(batch["image"])
        seeds = draw_seeds(generator, len(images))
        if severity == 0:
            return batch
        return {
            **batch,
            "image": [self.corrupt(im, int(severity), s) for im, s in zip(images, seeds, strict=True)],
        }
