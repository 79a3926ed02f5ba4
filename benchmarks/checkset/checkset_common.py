"""Shared pieces of the check-set builders (benchmarks/checkset: icons; benchmarks/checkset2: Unicode
symbols): the error type, the icon builder's parameters and one icon, and the rules both builders
apply — GLAMI's markets and their weights, class slugs and category ids, the split by family, the
seeded render style."""

from __future__ import annotations

import colorsys
import hashlib
import math
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# GLAMI-1M's 13 markets and rough listing shares (the proportions fusionzoo's synth dataset uses).
GEOS = ("cz", "sk", "ro", "gr", "si", "hu", "hr", "es", "lt", "lv", "tr", "ee", "bg")
GEO_WEIGHTS = (0.18, 0.10, 0.10, 0.08, 0.05, 0.10, 0.06, 0.08, 0.05, 0.04, 0.07, 0.03, 0.06)


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
        check_shared(self)
        low, high = self.scale_range
        if not 0 < low <= high <= 1:
            raise BuildError(f"scale range must satisfy 0 < low <= high <= 1, got {self.scale_range}")


def check_shared(params: Any) -> None:
    """The checks of the parameters both builders have: items per image, test fraction, image size."""
    if params.items_per_image < 1:
        raise BuildError(f"--items-per-image must be >= 1, got {params.items_per_image}")
    if not 0 < params.test_fraction < 1:
        raise BuildError(f"--test-fraction must be in (0, 1), got {params.test_fraction}")
    if min(params.image_width, params.image_height) < 16:
        raise BuildError(
            f"--image-size must be at least 16x16, got {params.image_width}x{params.image_height}"
        )


def with_item_ids(items: list[dict], rng: np.random.Generator) -> list[dict]:
    """Distinct random 8-digit ``item_id`` s (GLAMI-like), then the items in a seeded random order."""
    item_ids = rng.choice(np.arange(10_000_000, 100_000_000), size=len(items), replace=False)
    for item, item_id in zip(items, item_ids.tolist(), strict=True):
        item["item_id"] = str(item_id)
    return [items[i] for i in rng.permutation(len(items)).tolist()]


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


def slugify(text: str) -> str:
    """``"Transportation + Road"`` → ``"transportation-road"``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def category_ids(labels: Iterable[str]) -> dict[str, int]:
    """Stable, non-contiguous integer ids (1000..9999) from each label's sha256; collisions move up."""
    ids: dict[str, int] = {}
    used: set[int] = set()
    for label in sorted(set(labels)):
        value = int(hashlib.sha256(label.encode()).hexdigest(), 16) % 9000 + 1000
        while value in used:
            value = 1000 + (value - 999) % 9000
        used.add(value)
        ids[label] = value
    return ids


def split_by_family(icons: list[Icon], test_fraction: float, seed: int) -> set[str]:
    """Icon names that go to test: whole families (``baseIconId``), about ``test_fraction`` of each
    class's icons; every class keeps at least two train icons and gets at least one test icon when
    one of its families can move without emptying another class's train side."""
    families: dict[str, list[Icon]] = {}
    for icon in icons:
        families.setdefault(icon.family, []).append(icon)
    per_class = Counter(icon.label for icon in icons)
    target = {label: max(1, int(math.floor(test_fraction * n + 0.5))) for label, n in per_class.items()}
    rng = np.random.default_rng([seed, 2])
    order = sorted(families)
    order = [order[i] for i in rng.permutation(len(order))]
    in_test: Counter[str] = Counter()
    test: set[str] = set()

    def keeps_train(counts: Counter[str]) -> bool:
        return all(per_class[label] - in_test[label] - n >= 2 for label, n in counts.items())

    def move(family: str, counts: Counter[str]) -> None:
        in_test.update(counts)
        test.update(icon.name for icon in families[family])

    for family in order:
        counts = Counter(icon.label for icon in families[family])
        if all(in_test[label] + n <= target[label] for label, n in counts.items()) and keeps_train(counts):
            move(family, counts)
    for label in sorted(per_class):  # repair: a class the greedy pass left without test icons
        if in_test[label] > 0:
            continue
        candidates = sorted(
            (f for f in order if f not in {icon.family for icon in icons if icon.name in test}),
            key=lambda f: len(families[f]),
        )
        for family in candidates:
            counts = Counter(icon.label for icon in families[family])
            if label in counts and keeps_train(counts):
                move(family, counts)
                break
    return test


def render_style(seed: int, image_id: str, params: BuildParams) -> dict[str, Any]:
    """Seeded colour (dark, saturated), scale and offset of one rendered icon."""
    rng = np.random.default_rng([seed, 4, int(image_id)])
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0.5, 0.95), rng.uniform(0.25, 0.65)
    red, green, blue = (int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, sat, val))
    scale = float(rng.uniform(*params.scale_range))
    side = min(params.image_width, params.image_height) * scale
    slack_x = (params.image_width - side) / 2
    slack_y = (params.image_height - side) / 2
    offset_x = float(rng.uniform(-0.35, 0.35) * slack_x)
    offset_y = float(rng.uniform(-0.35, 0.35) * slack_y)
    return {
        "fill": f"#{red:02x}{green:02x}{blue:02x}",
        "side": side,
        "x": slack_x + offset_x,
        "y": slack_y + offset_y,
    }
