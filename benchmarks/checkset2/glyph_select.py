"""The second check set's rules: which symbols, which label (the Unicode block), which texts (CLDR's
name and keywords in each of GLAMI's 13 languages), which classes, the split by family, and the items
that share each image (explained in docs/checkset.md, "The second check set")."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from checkset_common import GEO_WEIGHTS, GEOS, BuildError, category_ids, check_shared, slugify, with_item_ids
from fontTools import unicodedata as unicode_data

# words of a Unicode name that only say which way a symbol points: ← and → are one family
DIRECTION_WORDS = frozenset(
    [
        "LEFT",
        "RIGHT",
        "UP",
        "DOWN",
        "LEFTWARDS",
        "RIGHTWARDS",
        "UPWARDS",
        "DOWNWARDS",
        "NORTH",
        "SOUTH",
        "EAST",
        "WEST",
        "NORTHEAST",
        "NORTHWEST",
        "SOUTHEAST",
        "SOUTHWEST",
        "POINTING",
        "OPENING",
        "CLOSING",
        "REVERSED",
        "TURNED",
        "INVERTED",
        "ANTICLOCKWISE",
        "CLOCKWISE",
        "TOP",
        "BOTTOM",
        "UPPER",
        "LOWER",
    ]
)
EXCLUDED_CATEGORIES = ("Z", "C")  # separators (spaces) and control/format characters: nothing to draw


@dataclass(frozen=True)
class GlyphParams:
    """Everything that determines the output (with the three tarballs' integrity)."""

    seed: int = 0
    min_chars: int = 12
    items_per_image: float = 13.0
    test_fraction: float = 0.2
    image_width: int = 224
    image_height: int = 224
    scale_range: tuple[float, float] = (0.45, 0.8)
    jpeg_quality: int = 90

    def check(self) -> None:
        if self.min_chars < 3:
            raise BuildError(f"--min-chars must be >= 3, got {self.min_chars}")
        check_shared(self)


@dataclass
class Glyph:
    """One eligible symbol (the fields the shared GLAMI-layout writers read: name, family, label, tags, author)."""

    char: str
    name: str  # "U+2192 RIGHTWARDS ARROW"
    family: str  # the Unicode name without direction words: a symbol and its mirror images
    label: str  # the Unicode block
    tags: list[str]  # [block, general category]
    fonts: list[str]  # the fonts that have it
    texts: dict[str, tuple[str, str]] = field(default_factory=dict)  # geo → (name, description)
    author: str = "Unicode CLDR"
    label_source: str = "admin"  # the block is the Unicode Character Database's, curated


def family_of(char: str) -> str:
    """``←`` and ``→`` (LEFTWARDS / RIGHTWARDS ARROW) → ``ARROW``: mirror images share a family."""
    words = re.split(r"[ -]+", unicodedata.name(char, f"U+{ord(char):04X}"))
    kept = [w for w in words if w not in DIRECTION_WORDS]
    return " ".join(kept) or unicodedata.name(char, "")


def description(name: str, keywords: list[str]) -> str:
    """CLDR's keywords other than the name, comma-separated, in CLDR's order."""
    return ", ".join(k for k in keywords if k.strip() and k.strip().lower() != name.strip().lower())


def eligible_glyphs(
    cldr: dict[str, dict[str, Any]], emoji: frozenset[str], cmaps: dict[str, set[int]]
) -> tuple[list[Glyph], dict[str, int]]:
    """Symbols that can be items: one code point, not an emoji, not a space or control character, a
    CLDR name in all 13 languages, drawn by at least one font; and the count of each reason to drop."""
    dropped: Counter[str] = Counter()
    symbols = sorted(set().union(*[set(entries) for entries in cldr.values()]))
    glyphs = []
    for symbol in symbols:
        if len(symbol.replace("\ufe0f", "")) != 1:
            dropped["sequence of several code points"] += 1
            continue
        char = symbol.replace("\ufe0f", "")
        if char in emoji:
            dropped["emoji"] += 1
            continue
        if unicodedata.category(char).startswith(EXCLUDED_CATEGORIES):
            dropped["space or control character"] += 1
            continue
        if not all(symbol in entries for entries in cldr.values()):
            dropped["not named in all 13 languages"] += 1
            continue
        fonts = [name for name, cmap in cmaps.items() if ord(char) in cmap]
        if not fonts:
            dropped["in none of the fonts"] += 1
            continue
        block = unicode_data.block(char)
        glyphs.append(
            Glyph(
                char=char,
                name=f"U+{ord(char):04X} {unicodedata.name(char, '')}".strip(),
                family=family_of(char),
                label=block,
                tags=[block, unicodedata.category(char)],
                fonts=fonts,
                texts={
                    geo: (
                        entries[symbol]["tts"],
                        description(entries[symbol]["tts"], entries[symbol]["keywords"]),
                    )
                    for geo, entries in cldr.items()
                },
            )
        )
    return glyphs, dict(sorted(dropped.items()))


def choose_classes(glyphs: list[Glyph], min_chars: int) -> tuple[list[Glyph], dict[str, int]]:
    """The glyphs of the blocks with at least ``min_chars`` eligible symbols in at least two families;
    ``(kept glyphs, eligible symbols per block)``."""
    per_block = Counter(g.label for g in glyphs)
    families = {b: len({g.family for g in glyphs if g.label == b}) for b in per_block}
    kept = [g for g in glyphs if per_block[g.label] >= min_chars and families[g.label] >= 2]
    if len({g.label for g in kept}) < 2:
        raise BuildError(f"only {len({g.label for g in kept})} Unicode block(s) have >= {min_chars} eligible "
                         "symbols; lower --min-chars")  # fmt: skip
    return kept, dict(per_block.most_common())


def make_items(glyphs: list[Glyph], test: set[str], params: GlyphParams) -> tuple[list[dict], list[dict]]:
    """``(images, items)``: one image per symbol, ``min(13, 1 + Poisson(items_per_image − 1))`` items
    per image, one per language, the languages drawn without replacement with GLAMI's market weights."""
    rng = np.random.default_rng([params.seed, 3])
    ids = category_ids(g.label for g in glyphs)
    image_ids = rng.choice(np.arange(1_000_000, 10_000_000), size=len(glyphs), replace=False)
    images, items = [], []
    for glyph, image_id in zip(glyphs, image_ids.tolist(), strict=True):
        split = "test" if glyph.name in test else "train"
        images.append({"image_id": str(image_id), "icon": glyph, "split": split})
        geos = [geo for geo in GEOS if geo in glyph.texts]
        weights = np.array([GEO_WEIGHTS[GEOS.index(g)] for g in geos])
        count = int(min(len(geos), 1 + rng.poisson(params.items_per_image - 1)))
        for index in sorted(
            rng.choice(len(geos), size=count, replace=False, p=weights / weights.sum()).tolist()
        ):
            name, text = glyph.texts[geos[index]]
            items.append(
                {
                    "image_id": str(image_id),
                    "geo": geos[index],
                    "name": name,
                    "description": text,
                    "category": ids[glyph.label],
                    "category_name": slugify(glyph.label),
                    "label_source": glyph.label_source,
                    "split": split,
                    "icon": glyph.name,
                }
            )
    return images, with_item_ids(items, rng)
