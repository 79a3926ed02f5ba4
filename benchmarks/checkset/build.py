"""Build the *check set*: a small, real image + text classification set in the exact GLAMI-1M layout.

    python benchmarks/checkset/build.py --out /work/data/checkset/glami1m [--seed 0] [--cache-dir DIR]

Source: the npm package ``@mdi/svg`` (Material Design Icons, pinned to 7.4.47, its tarball verified
against the registry's sha512 integrity): ``package/meta.json`` (name, aliases, tags, author, ...) and
``package/svg/<name>.svg``. Output (what ``fusionzoo ... --dataset glami1m`` reads)::

    <out>/GLAMI-1M-dataset/GLAMI-1M-train.csv   item_id,image_id,geo,name,description,category,
    <out>/GLAMI-1M-dataset/GLAMI-1M-test.csv      category_name,label_source
    <out>/GLAMI-1M-dataset/images/<image_id>.jpg
    <out>/build-info.json                       parameters, versions, counts, sha256 of the CSVs
    <out>/checkset-images.csv                   per image: icon, family (baseIconId), tags, split

Rules (docs/checkset.md explains each one and gives the measured counts):

- icons: not deprecated, at least one MDI tag, primary tag not in ``EXCLUDED_TAGS`` (``Emoji``: emoji
  sets are kept for an independent check);
- label: the icon's **first** tag (MDI lists the primary category first); ``label_source`` is empty
  (NaN, "rule-based") when the icon has several tags, else ``admin`` for icons by the MDI core authors
  (``CORE_AUTHORS``) and ``custom-tag`` for community contributions;
- text: one *text variant* per icon name or alias, humanised (``lock-open-minus`` → ``Lock open minus``),
  with every word of every MDI tag name removed (``weather``, ``battery``, ``food``, ... and their
  singular/plural), so the label is not in the text verbatim; variants left empty are dropped, and
  icons left with no variant are dropped. ``name`` = one variant, ``description`` = the icon's other
  variants in a seeded order;
- classes: kept when they have at least ``--min-icons`` eligible icons in at least ``--min-families``
  icon families (``baseIconId``: an icon and its outline/variant forms; ``Cloud`` is one family);
  ``--images`` icons are drawn per class in proportion to the class's size (at least
  ``--min-images-per-class``), round-robin over the class's families, so the natural long tail of
  MDI's tags is kept and a class is not the variants of one glyph;
- items share images like GLAMI: each drawn icon is rendered once (one ``image_id``) and gets
  ``1 + Poisson(--items-per-image − 1)`` items (capped at 13 per text variant), one per (text variant,
  geo) pair; geos drawn without replacement per variant with GLAMI-like market weights. The texts are
  English in every geo (no translation offline): ``geo`` is a market tag only;
- split: by MDI icon family (``baseIconId``: an icon and its outline/variant forms), stratified per
  class, so no image — and no near-duplicate variant of an image — is in both train and test;
- render: the SVG path in a seeded dark colour, scaled and shifted by a seeded amount, on white, at
  ``--image-size`` (224×224), via cairosvg, saved as JPEG quality 90.

Deterministic for given parameters and tarball; idempotent (an existing build with the same
parameters is kept; different parameters need ``--force``); atomic (built in a sibling temp folder,
then renamed into place).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import math
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np

BUILDER_VERSION = 2  # 2: + checkset-images.csv
MDI_PACKAGE = "@mdi/svg"
MDI_VERSION = "7.4.47"
# `npm view @mdi/svg@7.4.47 dist.integrity` (the registry's sha512 of the tarball).
KNOWN_INTEGRITY = {
    "7.4.47": "sha512-WQ2gDll12T9WD34fdRFgQVgO8bag3gavrAgJ0frN4phlwdJARpE6gO1YvLEMJR0KKgoc+/Ea/A0Pp11I00xBvw=="
}
DATASET_FOLDER = "GLAMI-1M-dataset"
TRAIN_CSV = "GLAMI-1M-train.csv"
TEST_CSV = "GLAMI-1M-test.csv"
IMAGES_FOLDER = "images"
BUILD_INFO = "build-info.json"
IMAGES_SIDECAR = "checkset-images.csv"  # per image: icon, family, tags, split (for grouped analyses)
SVG_NS = "http://www.w3.org/2000/svg"
GLAMI_COLUMNS = (
    "item_id",
    "image_id",
    "geo",
    "name",
    "description",
    "category",
    "category_name",
    "label_source",
)
# GLAMI-1M's 13 markets and rough listing shares (the proportions fusionzoo's synth dataset uses).
GEOS = ("cz", "sk", "ro", "gr", "si", "hu", "hr", "es", "lt", "lv", "tr", "ee", "bg")
GEO_WEIGHTS = (0.18, 0.10, 0.10, 0.08, 0.05, 0.10, 0.06, 0.08, 0.05, 0.04, 0.07, 0.03, 0.06)
EXCLUDED_TAGS = frozenset({"Emoji"})
# MDI's maintainers and the original Material Design icons: their tags count as curated ("admin").
CORE_AUTHORS = frozenset({"Google", "Austin Andrews", "Michael Richins", "Michael Irigoyen"})


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


# ------------------------------------------------------------------------------------------ source
def sri_sha512(path: Path) -> str:
    """Subresource-integrity string (``sha512-<base64>``) of a file, as npm reports it."""
    digest = hashlib.sha512()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def registry_integrity(version: str) -> str:
    """``npm view @mdi/svg@<version> dist.integrity`` (needs npm and the registry)."""
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError(
            f"npm is not installed, and no pinned integrity is known for {MDI_PACKAGE}@{version}; "
            "install npm (apt-get install npm) or pass --expected-integrity"
        )
    result = subprocess.run(
        [npm, "view", f"{MDI_PACKAGE}@{version}", "dist.integrity"], capture_output=True, text=True
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise BuildError(f"`npm view {MDI_PACKAGE}@{version} dist.integrity` failed: {result.stderr.strip()}")
    return result.stdout.strip()


def fetch_tarball(version: str, cache_dir: Path, console: Any) -> Path:
    """``npm pack @mdi/svg@<version>`` into ``cache_dir`` (reused when already there)."""
    target = cache_dir / f"mdi-svg-{version}.tgz"
    if target.is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError(
            "npm is not installed: install it (apt-get install npm) or download the tarball elsewhere "
            f"(`npm pack {MDI_PACKAGE}@{version}`) and pass --mdi-tarball PATH"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".npm-pack-") as tmp:
        console.print(f"[build] npm pack {MDI_PACKAGE}@{version} → {cache_dir}")
        result = subprocess.run(
            [npm, "pack", f"{MDI_PACKAGE}@{version}", "--pack-destination", tmp, "--silent"],
            capture_output=True,
            text=True,
        )
        packed = list(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or len(packed) != 1:
            raise BuildError(
                f"`npm pack {MDI_PACKAGE}@{version}` failed (exit {result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        os.replace(packed[0], target)
    return target


def verify_tarball(path: Path, expected: str | None) -> str:
    """The tarball's integrity; raises :class:`BuildError` when it differs from ``expected``."""
    actual = sri_sha512(path)
    if expected is not None and actual != expected:
        raise BuildError(
            f"{path}: sha512 integrity {actual} differs from the expected {expected}; the file is not the "
            "published package (delete it to download it again, or pass --expected-integrity skip)"
        )
    return actual


def read_mdi(tarball: Path) -> tuple[list[dict[str, Any]], dict[str, bytes], str]:
    """``(meta entries, svg bytes by icon name, package version)`` read from the npm tarball."""
    svgs: dict[str, bytes] = {}
    meta = None
    version = "unknown"
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                name = member.name
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                if name == "package/meta.json":
                    meta = json.loads(handle.read().decode("utf-8"))
                elif name == "package/package.json":
                    version = str(json.loads(handle.read().decode("utf-8")).get("version", "unknown"))
                elif name.startswith("package/svg/") and name.endswith(".svg"):
                    svgs[name[len("package/svg/") : -len(".svg")]] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BuildError(f"{tarball} is not a readable .tgz: {exc}") from None
    if meta is None:
        raise BuildError(f"{tarball} has no package/meta.json: is it the {MDI_PACKAGE} tarball?")
    if not isinstance(meta, list):
        raise BuildError(f"{tarball}: package/meta.json is not a list of icons")
    return meta, svgs, version


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
    item_ids = rng.choice(np.arange(10_000_000, 100_000_000), size=len(items), replace=False)
    for item, item_id in zip(items, item_ids.tolist(), strict=True):
        item["item_id"] = str(item_id)
    shuffled = rng.permutation(len(items)).tolist()
    return images, [items[i] for i in shuffled]


def write_glami_csv(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows with exactly GLAMI-1M's columns (UTF-8, minimal quoting, ``\\n`` line ends).

    An empty string is an empty field, which GLAMI readers (and fusionzoo) read as NaN. Returns the count.
    """
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(GLAMI_COLUMNS)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else str(row[c]) for c in GLAMI_COLUMNS])
            count += 1
    return count


def write_images_sidecar(path: Path, images: list[dict], items: list[dict]) -> None:
    """``checkset-images.csv``: one row per image with its icon, family, tags, author, split, item count.

    Not read by fusionzoo; it lets analyses group by image or by icon family (e.g. a validation split
    that shares no image with train)."""
    per_image = Counter(item["image_id"] for item in items)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["image_id", "icon", "family", "label", "tags", "author", "split", "items"])
        for image in sorted(images, key=lambda im: im["image_id"]):
            icon = image["icon"]
            writer.writerow(
                [
                    image["image_id"],
                    icon.name,
                    icon.family,
                    slugify(icon.label),
                    "|".join(icon.tags),
                    icon.author,
                    image["split"],
                    per_image[image["image_id"]],
                ]
            )


# ------------------------------------------------------------------------------------------ render
def render_style(seed: int, image_id: str, params: BuildParams) -> dict[str, Any]:
    """Seeded colour (dark, saturated), scale and offset of one rendered icon."""
    import colorsys

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


def compose_svg(svg: bytes, width: int, height: int, style: dict[str, Any]) -> bytes:
    """The icon's drawing placed on a white ``width``×``height`` canvas with ``style``'s fill and box."""
    try:
        root = ET.fromstring(svg)
    except ET.ParseError as exc:
        raise BuildError(f"icon SVG is not valid XML: {exc}") from None
    view_box = [float(v) for v in re.split(r"[ ,]+", root.get("viewBox", "0 0 24 24").strip())]
    if len(view_box) != 4 or view_box[2] <= 0 or view_box[3] <= 0:
        raise BuildError(f"icon SVG has an unusable viewBox {root.get('viewBox')!r}")
    min_x, min_y, box_w, box_h = view_box
    scale = style["side"] / max(box_w, box_h)
    ET.register_namespace("", SVG_NS)  # children serialise as <path ...>, not <ns0:path ...>
    inner = "".join(ET.tostring(child, encoding="unicode") for child in root)
    transform = (
        f"translate({style['x']:.4f},{style['y']:.4f}) scale({scale:.6f}) translate({-min_x},{-min_y})"
    )
    return (
        f'<svg xmlns="{SVG_NS}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><rect width="{width}" height="{height}" fill="#ffffff"/>'
        f'<g transform="{transform}" fill="{style["fill"]}">{inner}</g></svg>'
    ).encode()


def render_jpeg(svg: bytes, width: int, height: int, style: dict[str, Any], quality: int = 90) -> bytes:
    """SVG → RGB JPEG bytes (cairosvg rasterises, Pillow encodes)."""
    try:
        import cairosvg
    except (ImportError, OSError) as exc:
        raise BuildError(
            f"cairosvg is needed to render the icons ({exc}); "
            "pip install -r benchmarks/checkset/requirements.txt (and apt-get install libcairo2)"
        ) from None
    from PIL import Image

    png = cairosvg.svg2png(
        bytestring=compose_svg(svg, width, height, style), output_width=width, output_height=height
    )
    with Image.open(io.BytesIO(png)) as image:
        rgba = image.convert("RGBA")
    canvas = Image.new("RGB", rgba.size, (255, 255, 255))
    canvas.paste(rgba, mask=rgba.getchannel("A"))
    out = io.BytesIO()
    canvas.save(out, format="JPEG", quality=quality)
    return out.getvalue()


# ------------------------------------------------------------------------------------------- build
def params_fingerprint(params: BuildParams, integrity: str) -> str:
    payload = {"builder": BUILDER_VERSION, "params": asdict(params), "mdi_integrity": integrity}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def existing_build(out: Path) -> dict[str, Any] | None:
    info_path = out / BUILD_INFO
    if not info_path.is_file():
        return None
    try:
        return json.loads(info_path.read_text(encoding="utf-8"))
    except ValueError:
        return None


def is_intact(out: Path, info: dict[str, Any]) -> bool:
    """The CSVs still have the sha256 recorded in build-info.json and every image file exists."""
    dataset = out / DATASET_FOLDER
    for name, digest in info.get("sha256", {}).items():
        path = dataset / name
        if not path.is_file() or sha256_file(path) != digest:
            return False
    images = dataset / IMAGES_FOLDER
    return images.is_dir() and sum(1 for _ in images.glob("*.jpg")) == info.get("counts", {}).get("images")


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("cairosvg", "cairocffi", "pillow", "numpy"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    try:
        import cairocffi

        out["libcairo"] = cairocffi.cairo_version_string()
    except (ImportError, OSError, AttributeError):  # informational only
        out["libcairo"] = "unknown"
    return {k: str(v) for k, v in out.items()}


def summarise(images: list[dict], items: list[dict], classes_available: dict[str, Any]) -> dict[str, Any]:
    per_image = Counter(item["image_id"] for item in items)
    sizes = np.array(sorted(per_image.values()))
    by_class: dict[str, dict[str, Any]] = {}
    for split in ("train", "test"):
        for item in items:
            if item["split"] != split:
                continue
            entry = by_class.setdefault(
                item["category_name"], {"category": item["category"], "train": 0, "test": 0}
            )
            entry[split] += 1
    for image in images:
        entry = by_class[slugify(image["icon"].label)]
        key = "images_" + image["split"]
        entry[key] = entry.get(key, 0) + 1
    ordered = dict(sorted(by_class.items(), key=lambda kv: (-(kv[1]["train"] + kv[1]["test"]), kv[0])))
    sources = Counter(item["label_source"] or "NaN" for item in items)
    return {
        "items": len(items),
        "items_train": sum(item["split"] == "train" for item in items),
        "items_test": sum(item["split"] == "test" for item in items),
        "images": len(images),
        "images_train": sum(image["split"] == "train" for image in images),
        "images_test": sum(image["split"] == "test" for image in images),
        "items_per_image": {
            "mean": round(float(sizes.mean()), 3),
            "median": float(np.median(sizes)),
            "min": int(sizes.min()),
            "max": int(sizes.max()),
        },
        "classes": len(by_class),
        "class_sizes": ordered,
        "geos": dict(Counter(item["geo"] for item in items).most_common()),
        "label_source": dict(sources.most_common()),
        "empty_description": sum(item["description"] == "" for item in items),
        "eligible_per_primary_tag": classes_available,
    }


def build(
    out: Path,
    params: BuildParams,
    *,
    tarball: Path | None = None,
    cache_dir: Path | None = None,
    version: str = MDI_VERSION,
    expected_integrity: str | None = "pinned",
    force: bool = False,
    console: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Build (or reuse) the check set at ``out``; returns its build info."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = console or Console(stderr=True)
    params.check()
    started = time.perf_counter()
    out = Path(out).expanduser().resolve()
    if tarball is None:
        cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        tarball = fetch_tarball(version, cache, console)
    tarball = Path(tarball).expanduser().resolve()
    if not tarball.is_file():
        raise BuildError(f"--mdi-tarball {tarball} does not exist")
    if expected_integrity == "pinned":
        expected_integrity = KNOWN_INTEGRITY.get(version) or registry_integrity(version)
    integrity = verify_tarball(tarball, None if expected_integrity in (None, "skip") else expected_integrity)
    fingerprint = params_fingerprint(params, integrity)

    previous = existing_build(out)
    if previous is not None and not force:
        if previous.get("fingerprint") == fingerprint and is_intact(out, previous):
            console.print(
                f"[build] {out} is already built with these parameters ({fingerprint}); nothing to do"
            )
            return previous
        if previous.get("fingerprint") != fingerprint:
            raise BuildError(
                f"{out} holds a check set built with other parameters (fingerprint "
                f"{previous.get('fingerprint')}, now {fingerprint}); pass --force to replace it or choose "
                "another --out"
            )
        console.print(f"[build] {out} is incomplete or modified; rebuilding it")
    elif out.exists() and previous is None and any(out.iterdir()):
        raise BuildError(
            f"{out} exists, is not empty and has no {BUILD_INFO}: it is not a check set, and nothing is "
            "deleted to make room; choose another --out"
        )

    meta, svgs, package_version = read_mdi(tarball)
    icons, dropped = eligible_icons(meta, svgs)
    chosen, available = choose_icons(icons, params)
    test = split_by_family(chosen, params.test_fraction, params.seed)
    images, items = make_items(chosen, test, params)
    console.print(
        f"[build] {MDI_PACKAGE}@{package_version}: {len(meta):,} icons, {len(icons):,} eligible, "
        f"{len(chosen):,} drawn in {len({i.label for i in chosen})} classes → {len(items):,} items"
    )

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    staging.chmod(0o777 & ~current_umask())  # mkdtemp makes it 0700; the data set is for everyone
    try:
        dataset = staging / DATASET_FOLDER
        (dataset / IMAGES_FOLDER).mkdir(parents=True)
        columns = [
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        ]
        image_digest = hashlib.sha256()
        with Progress(*columns, console=console, disable=not progress, transient=False) as bar:
            task = bar.add_task("render images", total=len(images))
            for image in sorted(images, key=lambda im: im["image_id"]):
                style = render_style(params.seed, image["image_id"], params)
                data = render_jpeg(
                    image["icon"].svg, params.image_width, params.image_height, style, params.jpeg_quality
                )
                (dataset / IMAGES_FOLDER / f"{image['image_id']}.jpg").write_bytes(data)
                image_digest.update(image["image_id"].encode() + b"\0" + hashlib.sha256(data).digest())
                bar.advance(task)
        for split, name in (("train", TRAIN_CSV), ("test", TEST_CSV)):
            write_glami_csv(dataset / name, (item for item in items if item["split"] == split))
        write_images_sidecar(staging / IMAGES_SIDECAR, images, items)
        info = {
            "what": "fusionzoo check set: Material Design Icons in the GLAMI-1M layout (docs/checkset.md)",
            "builder_version": BUILDER_VERSION,
            "fingerprint": fingerprint,
            "source": {
                "package": MDI_PACKAGE,
                "version": package_version,
                "tarball": tarball.name,
                "integrity": integrity,
                "integrity_checked_against": expected_integrity,
            },
            "params": asdict(params),
            "versions": versions(),
            "dropped_icons": dropped,
            "counts": summarise(images, items, available),
            "sha256": {name: sha256_file(dataset / name) for name in (TRAIN_CSV, TEST_CSV)},
            "images_sha256": image_digest.hexdigest(),
            "bytes": {
                "csv": sum((dataset / n).stat().st_size for n in (TRAIN_CSV, TEST_CSV)),
                "images": sum(p.stat().st_size for p in (dataset / IMAGES_FOLDER).iterdir()),
            },
        }
        info["build_seconds"] = round(time.perf_counter() - started, 2)
        (staging / BUILD_INFO).write_text(
            json.dumps(info, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    counts = info["counts"]
    console.print(
        f"[build] wrote {out}: {counts['items']:,} items ({counts['items_train']:,} train / "
        f"{counts['items_test']:,} test), {counts['images']:,} images, {counts['classes']} classes, "
        f"{counts['items_per_image']['mean']:.2f} items per image, in {info['build_seconds']:.1f} s"
    )
    return info


def default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("fusionzoo")) / "checkset"


def parse_size(value: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*(?:[x×]\s*(\d+))?\s*", value)
    if not match:
        raise click.BadParameter(f"{value!r} is not WIDTH or WIDTHxHEIGHT, e.g. 224 or 228x298")
    width = int(match.group(1))
    return width, int(match.group(2) or width)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (gets GLAMI-1M-dataset/ and build-info.json), e.g. <data dir>/glami1m.",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--mdi-tarball",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"A local {MDI_PACKAGE} tarball (default: npm pack into --cache-dir).",
)
@click.option("--mdi-version", default=MDI_VERSION, show_default=True)
@click.option(
    "--expected-integrity",
    default="pinned",
    show_default=True,
    help="sha512 SRI the tarball must have: 'pinned' (known for 7.4.47, else npm view), a value, or 'skip'.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the npm tarball is kept [default: <user cache>/fusionzoo/checkset].",
)
@click.option(
    "--min-icons",
    default=BuildParams.min_icons,
    show_default=True,
    type=int,
    help="Keep classes with at least this many eligible icons.",
)
@click.option(
    "--min-families",
    default=BuildParams.min_families,
    show_default=True,
    type=int,
    help="... in at least this many icon families (baseIconId; the test split is by family).",
)
@click.option(
    "--images",
    default=BuildParams.images,
    show_default=True,
    type=int,
    help="Icons (= images) to draw in all.",
)
@click.option("--min-images-per-class", default=BuildParams.min_images_per_class, show_default=True, type=int)
@click.option(
    "--items-per-image",
    default=BuildParams.items_per_image,
    show_default=True,
    type=float,
    help="Mean items per image (1 + Poisson).",
)
@click.option("--test-fraction", default=BuildParams.test_fraction, show_default=True, type=float)
@click.option(
    "--image-size", default="224", show_default=True, help="WIDTH or WIDTHxHEIGHT (GLAMI: 228x298)."
)
@click.option("--force", is_flag=True, help="Rebuild even if a build with other parameters is there.")
@click.option("--no-progress", is_flag=True)
def main(
    out: Path,
    seed: int,
    mdi_tarball: Path | None,
    mdi_version: str,
    expected_integrity: str,
    cache_dir: Path | None,
    min_icons: int,
    min_families: int,
    images: int,
    min_images_per_class: int,
    items_per_image: float,
    test_fraction: float,
    image_size: str,
    force: bool,
    no_progress: bool,
) -> None:
    """Build the check set (Material Design Icons in the GLAMI-1M layout); see the module docstring."""
    width, height = parse_size(image_size)
    params = BuildParams(
        seed=seed,
        min_icons=min_icons,
        min_families=min_families,
        images=images,
        min_images_per_class=min_images_per_class,
        items_per_image=items_per_image,
        test_fraction=test_fraction,
        image_width=width,
        image_height=height,
    )
    try:
        build(
            out,
            params,
            tarball=mdi_tarball,
            cache_dir=cache_dir,
            version=mdi_version,
            expected_integrity=None if expected_integrity == "skip" else expected_integrity,
            force=force,
            progress=not no_progress,
        )
    except BuildError as exc:
        raise click.ClickException(str(exc)) from None
    resolved = Path(out).expanduser().resolve()
    where = (
        f"--data-dir {resolved.parent}"  # <data dir>/glami1m: the cache goes to <data dir>/features too
        if resolved.name == "glami1m"
        else f"--data-option root={resolved} --data-dir DIR"
    )
    click.echo(f"fusionzoo encode --dataset glami1m {where} --image-encoder SPEC --text-encoder SPEC")


if __name__ == "__main__":
    main()
