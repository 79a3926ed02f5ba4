"""Shared pieces of the check-set builder: its error type, its parameters and one eligible icon."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path


class BuildError(RuntimeError):
    """The check set cannot be built; the message says why and what to do."""


@dataclass(frozen=True)
class BuildParams:
    """Everything that determines the output (with the tarball's integrity)."""

    seed: int = 0
    min_icons: int = 40
    min_families: int = 5
    images: int = 1300
    min_images_per_class: int = 15
    items_per_image: float = 5.0
    max_items_per_variant: int = 13
    test_fraction: float = 0.2
    image_width: int = 224
    image_height: int = 224
    scale_range: tuple[float, float] = (0.6, 0.8)
    jpeg_quality: int = 90

    def check(self) -> None:
        if self.min_icons < 2:
            raise BuildError(f"--min-icons must be >= 2, got {self.min_icons}")
        if self.min_families < 2:
            raise BuildError(f"--min-families must be >= 2, got {self.min_families}")
        if self.min_images_per_class < 2:
            raise BuildError(f"--min-images-per-class must be >= 2, got {self.min_images_per_class}")
        if self.items_per_image < 1:
            raise BuildError(f"--items-per-image must be >= 1, got {self.items_per_image}")
        if not 0 < self.test_fraction < 1:
            raise BuildError(f"--test-fraction must be in (0, 1), got {self.test_fraction}")
        if min(self.image_width, self.image_height) < 16:
            raise BuildError(
                f"--image-size must be at least 16x16, got {self.image_width}x{self.image_height}"
            )
        low, high = self.scale_range
        if not 0 < low <= high <= 1:
            raise BuildError(f"scale range must satisfy 0 < low <= high <= 1, got {self.scale_range}")


@dataclass
class Icon:
    """One eligible MDI icon."""

    name: str
    family: str  # baseIconId: an icon and its variants share it
    tags: list[str]
    author: str
    variants: list[str]  # humanised, label words removed, non-empty, unique
    label: str = ""
    label_source: str = ""  # "" = NaN (rule-based)
    svg: bytes = field(default=b"", repr=False)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
