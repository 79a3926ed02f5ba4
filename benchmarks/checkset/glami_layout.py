"""The GLAMI-1M layout on disk, shared by both check-set builders: the CSVs with exactly GLAMI-1M's
columns, the per-image sidecar, the counts recorded in build-info.json, the check of an existing
build, and the atomic publication of a new one (built in a hidden sibling folder, renamed into place)."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from checkset_common import BuildError, current_umask, sha256_file, slugify

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


def previous_build(out: Path, fingerprint: str, *, force: bool, console: Any) -> dict[str, Any] | None:
    """The build info of ``out`` when it already holds an intact build with ``fingerprint`` (nothing to
    do); ``None`` when a build should run. Another build there needs ``force``; a non-empty folder
    that is not a check set is never replaced."""
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
    return None


@contextlib.contextmanager
def staging_folder(out: Path) -> Iterator[Path]:
    """A hidden sibling folder of ``out`` to build in; removed afterwards unless :func:`publish` moved it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    staging.chmod(0o777 & ~current_umask())  # mkdtemp makes it 0700; the data set is for everyone
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, out: Path, info: dict[str, Any]) -> None:
    """Write ``build-info.json`` into ``staging`` and rename it to ``out`` (an old build moved aside first)."""
    (staging / BUILD_INFO).write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / out.name)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)
