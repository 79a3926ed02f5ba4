"""The check set's selection rules: which icons, which label, which texts, which classes, which
icons per class, the train/test split by icon family, and the items that share each image (the rules
are listed in build.py's docstring and explained in docs/checkset.md)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from checkset_common import (  # the shared rules, used here and by benchmarks/checkset2
    GEO_WEIGHTS,
    GEOS,
    BuildError,
    BuildParams,
    Icon,
    category_ids,
    slugify,
    with_item_ids,
)

EXCLUDED_TAGS = frozenset({"Emoji"})
# MDI's maintainers and the original Material Design icons: their tags count as curated ("admin").
CORE_AUTHORS = frozenset({"Google", "Austin Andrews", "Michael Richins", "Michael Irigoyen"})


# -------------------------------------------------------------------------------------------- text
def tag_words(tags: Iterable[str]) -> frozenset[str]:
    """The lower-case words of tag names (``"Food / Drink"`` → ``food``, ``drink``)."""
    return frozenset(word for tag in tags for word in re.findall(r"[a-z0-9]+", tag.lower()))


def strip_words(slug: str, banned: frozenset[str]) -> list[str]:
    """The words of an icon slug that are not banned, also removing simple singular/plural forms."""
    kept = []
    for word in slug.lower().split("-"):
        if not word:
            continue
        forms = {word, word + "s", word + "es", word[:-1] if word.endswith("s") else word}
        if forms & banned:
            continue
        kept.append(word)
    return kept


def humanise(words: Sequence[str]) -> str:
    """``["lock", "open"]`` → ``"Lock open"``."""
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def text_variants(name: str, aliases: Sequence[str], banned: frozenset[str]) -> list[str]:
    """Humanised, label-word-free, non-empty, unique variants: the name first, then the aliases."""
    out: list[str] = []
    for slug in [name, *aliases]:
        text = humanise(strip_words(slug, banned))
        if text and text not in out:
            out.append(text)
    return out


# ------------------------------------------------------------------------------------------ select
def eligible_icons(meta: list[dict[str, Any]], svgs: dict[str, bytes]) -> tuple[list[Icon], dict[str, int]]:
    """Icons that can be items (see the module docstring) and the count of each reason for dropping."""
    banned = tag_words(tag for entry in meta for tag in entry.get("tags", []))
    dropped: Counter[str] = Counter()
    icons = []
    for entry in meta:
        name = str(entry.get("name", ""))
        tags = [str(t) for t in entry.get("tags", [])]
        if entry.get("deprecated"):
            dropped["deprecated"] += 1
            continue
        if not tags:
            dropped["untagged"] += 1
            continue
        if tags[0] in EXCLUDED_TAGS:
            dropped["excluded tag " + tags[0]] += 1
            continue
        if name not in svgs:
            dropped["no svg file"] += 1
            continue
        variants = text_variants(name, [str(a) for a in entry.get("aliases", [])], banned)
        if not variants:
            dropped["no text left without tag words"] += 1
            continue
        author = str(entry.get("author", ""))
        icons.append(
            Icon(
                name=name,
                family=str(entry.get("baseIconId") or entry.get("id") or name),
                tags=tags,
                author=author,
                variants=variants,
                label=tags[0],
                label_source="" if len(tags) > 1 else ("admin" if author in CORE_AUTHORS else "custom-tag"),
                svg=svgs[name],
            )
        )
    return icons, dict(sorted(dropped.items()))


def allocate(counts: dict[str, int], total: int, minimum: int) -> dict[str, int]:
    """Images per class: ``total`` split in proportion to ``counts`` (largest remainder), each at least
    ``min(count, minimum)`` and at most ``count``."""
    labels = sorted(counts)
    available = np.array([counts[label] for label in labels], dtype=np.int64)
    floor = np.minimum(available, minimum)
    if total <= floor.sum():
        return {label: int(n) for label, n in zip(labels, floor, strict=True)}
    if total >= available.sum():
        return dict(zip(labels, available.tolist(), strict=True))
    # proportional share of what is left above the floors, capped at what each class has
    out = floor.copy()
    for _ in range(len(labels) + 1):
        remaining = total - out.sum()
        room = available - out
        if remaining <= 0 or room.sum() == 0:
            break
        weights = np.where(room > 0, available, 0).astype(float)
        exact = weights / weights.sum() * remaining
        add = np.minimum(np.floor(exact).astype(np.int64), room)
        if add.sum() == 0:  # only fractions left: largest remainders first
            for index in np.argsort(-(exact - np.floor(exact)), kind="stable"):
                if add.sum() >= remaining:
                    break
                if room[index] > 0:
                    add[index] += 1
        out += add
    return {label: int(n) for label, n in zip(labels, out, strict=True)}


def choose_icons(icons: list[Icon], params: BuildParams) -> tuple[list[Icon], dict[str, Any]]:
    """Keep classes with ``min_icons`` icons in ``min_families`` families; draw each class's share of
    ``images`` icons, round-robin over its families in a seeded order (so a class is not one glyph's
    variants). Returns ``(icons, {"icons": per primary tag, "families": per primary tag})``."""
    by_label: dict[str, list[Icon]] = {}
    for icon in icons:
        by_label.setdefault(icon.label, []).append(icon)
    families_of = {label: len({icon.family for icon in group}) for label, group in by_label.items()}
    kept = {
        label: group
        for label, group in by_label.items()
        if len(group) >= params.min_icons and families_of[label] >= params.min_families
    }
    if len(kept) < 2:
        raise BuildError(
            f"only {len(kept)} class(es) have >= {params.min_icons} eligible icons in >= "
            f"{params.min_families} families; lower --min-icons or --min-families"
        )
    quota = allocate(
        {label: len(group) for label, group in kept.items()}, params.images, params.min_images_per_class
    )
    rng = np.random.default_rng([params.seed, 1])
    chosen = []
    for label in sorted(kept):
        families: dict[str, list[Icon]] = {}
        for icon in sorted(kept[label], key=lambda icon: icon.name):
            families.setdefault(icon.family, []).append(icon)
        queues = [families[f] for f in sorted(families)]
        queues = [[queue[i] for i in rng.permutation(len(queue))] for queue in queues]
        queues = [queues[i] for i in rng.permutation(len(queues))]
        picked: list[Icon] = []
        depth = 0
        while len(picked) < quota[label]:
            for queue in queues:
                if depth < len(queue) and len(picked) < quota[label]:
                    picked.append(queue[depth])
            depth += 1
        chosen.extend(sorted(picked, key=lambda icon: icon.name))
    available = {
        "icons": {label: len(group) for label, group in sorted(by_label.items())},
        "families": dict(sorted(families_of.items())),
    }
    return chosen, available


# ------------------------------------------------------------------------------------------- items
def make_items(icons: list[Icon], test: set[str], params: BuildParams) -> tuple[list[dict], list[dict]]:
    """``(images, items)``: one image per icon, several items per image (see the module docstring)."""
    rng = np.random.default_rng([params.seed, 3])
    geo_p = np.array(GEO_WEIGHTS) / sum(GEO_WEIGHTS)
    ids = category_ids(icon.label for icon in icons)
    image_ids = rng.choice(np.arange(1_000_000, 10_000_000), size=len(icons), replace=False)
    images, items = [], []
    for icon, image_id in zip(icons, image_ids.tolist(), strict=True):
        split = "test" if icon.name in test else "train"
        variants = icon.variants
        cap = params.max_items_per_variant * len(variants)
        count = int(min(cap, 1 + rng.poisson(params.items_per_image - 1)))
        per_variant = [
            count // len(variants) + (1 if v < count % len(variants) else 0) for v in range(len(variants))
        ]
        images.append({"image_id": str(image_id), "icon": icon, "split": split})
        for v, n in enumerate(per_variant):
            if n == 0:
                continue
            geos = rng.choice(len(GEOS), size=n, replace=False, p=geo_p)
            others = [text for i, text in enumerate(variants) if i != v]
            for geo in geos.tolist():
                order = rng.permutation(len(others)).tolist()
                items.append(
                    {
                        "image_id": str(image_id),
                        "geo": GEOS[geo],
                        "name": variants[v],
                        "description": ", ".join(others[i] for i in order),
                        "category": ids[icon.label],
                        "category_name": slugify(icon.label),
                        "label_source": icon.label_source,
                        "split": split,
                        "icon": icon.name,
                    }
                )
    return images, with_item_ids(items, rng)
