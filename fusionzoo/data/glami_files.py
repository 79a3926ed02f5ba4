"""The GLAMI-1M layout on disk, tiny: rows, the two CSVs, a JPEG per image, the release zip (tests, examples)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from fusionzoo.data.glami import DATASET_FOLDER, GLAMI_COLUMNS, IMAGES_FOLDER, TEST_CSV, TRAIN_CSV

_COLOURS = ((200, 30, 30), (30, 60, 200), (30, 160, 60), (220, 200, 40))


def jpeg_bytes(colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (24, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def glami_rows(
    n: int, *, split: str = "train", categories: Sequence[int] = (7, 42, 13), start: int = 0
) -> list[dict[str, Any]]:
    """``n`` well-formed GLAMI rows cycling through ``categories`` (label_source varied, some NaN)."""
    sources = ("admin", "custom-tag", None, "quality-check") if split == "train" else ("admin", "custom-tag")
    geos = ("cz", "sk", "hu", "gr")
    rows = []
    for i in range(start, start + n):
        category = categories[i % len(categories)]
        rows.append(
            {
                "item_id": str(1000 + i),
                "image_id": str(5000 + i),
                "geo": geos[i % len(geos)],
                "name": f"item {i} word{category}",
                "description": None if i % 5 == 0 else f"description {i}",
                "category": category,
                "category_name": f"class-{category}",
                "label_source": sources[i % len(sources)],
            }
        )
    return rows


def write_glami(
    root: Path,
    train: Sequence[dict[str, Any]],
    test: Sequence[dict[str, Any]],
    *,
    images: bool = True,
    image_size: tuple[int, int] = (24, 32),
) -> Path:
    """Write ``root/GLAMI-1M-dataset/{train,test}.csv`` and a JPEG per image_id; returns the dataset dir."""
    dataset_dir = Path(root) / DATASET_FOLDER
    (dataset_dir / IMAGES_FOLDER).mkdir(parents=True, exist_ok=True)
    for rows, name in ((train, TRAIN_CSV), (test, TEST_CSV)):
        pd.DataFrame(list(rows), columns=list(GLAMI_COLUMNS)).to_csv(dataset_dir / name, index=False)
        if images:
            for row in rows:
                image_id = str(row["image_id"])
                if "/" in image_id or "\\" in image_id or image_id.startswith("."):
                    continue
                colour = _COLOURS[int(row["category"]) % len(_COLOURS)]
                (dataset_dir / IMAGES_FOLDER / f"{image_id}.jpg").write_bytes(jpeg_bytes(colour, image_size))
    return dataset_dir


def glami_zip(dataset_dir: Path, target: Path, *, test_only: bool = False) -> Path:
    """Zip a GLAMI-format folder like the official release (members under ``GLAMI-1M-dataset/``)."""
    dataset_dir = Path(dataset_dir)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for path in sorted(dataset_dir.rglob("*")):
            relative = path.relative_to(dataset_dir)
            if test_only and relative.name == TRAIN_CSV:
                continue
            if path.is_file():
                archive.write(path, f"{DATASET_FOLDER}/{relative.as_posix()}")
    return target
