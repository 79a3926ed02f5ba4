"""GLAMI-1M, read exactly as the official release lays it out.

Layout (``root`` may be the folder containing ``GLAMI-1M-dataset`` or that folder itself)::

    GLAMI-1M-dataset/
      GLAMI-1M-train.csv    item_id, image_id, geo, name, description, category, category_name, label_source
      GLAMI-1M-test.csv
      images/<image_id>.jpg

- text = ``name`` + "\\n" + ``description`` by default (``text_fields`` changes it); NaN → "".
- ``label_source`` NaN → ``"unknown"``; ``admin``, ``quality-check``, ``custom-tag`` are human labels.
- Labels: the integer ``category`` ids are not contiguous; label ``i`` is the i-th smallest category id
  present in the full train CSV. The map is stored as ``fusionzoo-labels.json`` next to the CSVs (or in
  ``<data dir>/labelmaps/`` when that folder is read-only) and reused while it covers train.
- Everything after reading (dedupe, unseen test labels, filters, val split, subsampling, image checks)
  is the shared code path of :mod:`fusionzoo.data.loading`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fusionzoo.data.base import DataError, DatasetSplits
from fusionzoo.data.checks import (
    join_text,
    normalise_label_source,
    note_replacements,
    read_csv_checked,
    resolve_image_paths,
)
from fusionzoo.data.loading import assemble_splits
from fusionzoo.data.paths import glami_dir, labelmaps_dir, resolve_data_dir

DATASET_FOLDER = "GLAMI-1M-dataset"
TRAIN_CSV = "GLAMI-1M-train.csv"
TEST_CSV = "GLAMI-1M-test.csv"
IMAGES_FOLDER = "images"
LABEL_MAP_FILE = "fusionzoo-labels.json"
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
GLAMI_GEOS = ("cz", "sk", "ro", "gr", "si", "hu", "hr", "es", "lt", "lv", "tr", "ee", "bg")
OFFICIAL_ROWS = {"train": 1_000_000, "test": 116_004}
NUM_CLASSES = 191
OFFICIAL_ZIP_MD5 = "500348bbf54595db81cba353acd50d78"  # GLAMI-1M-dataset.zip (FLUID.md)
EXTRACTED_MARKER = ".fusionzoo-extracted.json"


def find_dataset_dir(root: str | os.PathLike[str]) -> Path:
    """The ``GLAMI-1M-dataset`` folder for ``root`` (that folder, its parent, or ``<root>/glami1m/``)."""
    root = Path(root).expanduser()
    candidates = [root, root / DATASET_FOLDER, root / "glami1m" / DATASET_FOLDER]
    for candidate in candidates:
        if (candidate / TRAIN_CSV).is_file() or (candidate / TEST_CSV).is_file():
            return candidate.resolve()
    raise DataError(
        f"no GLAMI-1M dataset under {root}: looked for {TRAIN_CSV} in "
        + ", ".join(str(c) for c in candidates)
        + "; download it with `fusionzoo data glami1m --download` or pass the folder that contains "
        f"{DATASET_FOLDER}"
    )


def read_split(
    dataset_dir: Path, split: str, text_fields: Sequence[str], text_separator: str, info: dict
) -> pd.DataFrame:
    """One GLAMI CSV as a raw frame (see :data:`fusionzoo.data.checks.RAW_COLUMNS`)."""
    path = dataset_dir / (TRAIN_CSV if split == "train" else TEST_CSV)
    unknown = [f for f in text_fields if f not in GLAMI_COLUMNS]
    if unknown:
        raise DataError(
            f"text field(s) {', '.join(unknown)} are not GLAMI columns ({', '.join(GLAMI_COLUMNS)})"
        )
    hint = (
        " (only the test split was downloaded? run `fusionzoo data glami1m --download`)"
        if split == "train"
        else ""
    )
    if not path.is_file():
        raise DataError(
            f"GLAMI-1M {split} split: file {path} not found{hint}; expected a CSV with columns "
            + ", ".join(GLAMI_COLUMNS)
        )
    frame, replaced = read_csv_checked(path, GLAMI_COLUMNS, what=f"GLAMI-1M {split} split")
    category = frame["category"].fillna("").str.strip()
    bad = ~category.str.fullmatch(r"-?\d+")
    if bad.any():
        first = frame.loc[bad].iloc[0]
        raise DataError(
            f"{path} line {first['__row']} (item_id {first['item_id']}): category {first['category']!r} is not "
            "an integer id"
        )
    item_ids = frame["item_id"].fillna("").astype(str).str.strip()
    missing_ids = item_ids == ""
    if missing_ids.any():
        raise DataError(f"{path} line {frame.loc[missing_ids, '__row'].iloc[0]}: empty item_id")
    raw = pd.DataFrame(
        {
            "item_id": item_ids,
            "image_path": resolve_image_paths(
                frame["image_id"],
                dataset_dir / IMAGES_FOLDER,
                rows=frame["__row"],
                item_ids=item_ids,
                source=path,
                suffix=".jpg",
            ),
            "text": join_text(frame, list(text_fields), text_separator),
            "raw_label": pd.to_numeric(category).astype("int64").astype(str),
            "class_name": frame["category_name"].fillna("").astype(str).str.strip(),
            "geo": frame["geo"],
            "label_source": normalise_label_source(frame["label_source"]),
            "row": frame["__row"],
        }
    )
    raw["class_name"] = raw["class_name"].where(raw["class_name"] != "", "category-" + raw["raw_label"])
    note_replacements(replaced, path, raw, info)
    return raw


def label_map_locations(dataset_dir: Path, data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """Next to the CSVs first; the data dir's ``labelmaps/`` if the dataset folder is read-only."""
    key = hashlib.sha256(str(dataset_dir).encode()).hexdigest()[:16]
    locations = [dataset_dir / LABEL_MAP_FILE]
    with contextlib.suppress(DataError):
        locations.append(labelmaps_dir(data_dir) / f"glami-{key}.json")
    return locations


def load_glami(
    root: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    text_fields: Sequence[str] = ("name", "description"),
    text_separator: str = "\n",
    limit: int | None = None,
    per_class_cap: int | None = None,
    label_source: str = "all",
    geos: Sequence[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    on_bad_image: str = "skip",
    check_images: bool = True,
    name: str = "glami1m",
) -> DatasetSplits:
    """Load GLAMI-1M (or any dataset in its exact format) from ``root`` (default ``<data dir>/glami1m``).

    ``check_images`` stats every selected image file (missing → ``on_bad_image`` policy); unreadable
    JPEGs are found when decoding (:class:`fusionzoo.data.images.ImageTextDataset`).
    """
    if isinstance(text_fields, str):  # "name,description" from a command line
        text_fields = [f.strip() for f in text_fields.split(",") if f.strip()]
    if root is None:
        root = glami_dir(data_dir)
        if not root.exists():
            root = resolve_data_dir(data_dir)
    dataset_dir = find_dataset_dir(root)
    info: dict[str, Any] = {"dataset_dir": str(dataset_dir)}
    raw_train = read_split(dataset_dir, "train", text_fields, text_separator, info)
    raw_test = read_split(dataset_dir, "test", text_fields, text_separator, info)
    return assemble_splits(
        name=name,
        root=dataset_dir,
        raw_train=raw_train,
        raw_test=raw_test,
        sources={"train": dataset_dir / TRAIN_CSV, "test": dataset_dir / TEST_CSV},
        label_map_locations=label_map_locations(dataset_dir, data_dir),
        info=info,
        options={"format": "glami", "text_fields": list(text_fields), "text_separator": text_separator},
        limit=limit,
        per_class_cap=per_class_cap,
        label_source=label_source,
        geos=geos,
        val_fraction=val_fraction,
        seed=seed,
        on_bad_image=on_bad_image,
        check_images=check_images,
        known_geos=GLAMI_GEOS,
    )


def verify_glami(root: str | os.PathLike[str], *, deep: bool = False) -> dict[str, Any]:
    """Check a GLAMI-format folder: CSVs and columns, row counts, missing/corrupt images.

    Returns ``{"dataset_dir", "splits": {split: {"rows", "official_rows", "missing_columns", "error"}},
    "image_problems": DataFrame(item_id, image_path, problem), "ok": bool}``. Row counts differing from
    the official release fail only when the folder came from the official full zip (download marker).
    ``deep`` decodes every image instead of checking existence, size and the JPEG signature.
    """
    import json

    from fusionzoo.data.images import check_image_files

    dataset_dir = find_dataset_dir(root)
    marker_path = dataset_dir / EXTRACTED_MARKER
    marker = json.loads(marker_path.read_text()) if marker_path.is_file() else {}
    official = not marker.get("test_only") and marker.get("md5") == OFFICIAL_ZIP_MD5
    report: dict[str, Any] = {"dataset_dir": str(dataset_dir), "splits": {}, "ok": True}
    frames = []
    for split, name in (("train", TRAIN_CSV), ("test", TEST_CSV)):
        path = dataset_dir / name
        entry: dict[str, Any] = {
            "file": str(path),
            "rows": None,
            "official_rows": OFFICIAL_ROWS[split],
            "error": None,
        }
        report["splits"][split] = entry
        if not path.is_file():
            if split == "train" and marker.get("test_only"):
                entry["error"] = "not downloaded (test-only)"
                continue
            entry["error"] = "missing"
            report["ok"] = False
            continue
        try:
            frame, _ = read_csv_checked(path, GLAMI_COLUMNS, what=f"GLAMI-1M {split} split")
        except DataError as exc:
            entry["error"] = str(exc)
            report["ok"] = False
            continue
        entry["rows"] = len(frame)
        if official and len(frame) != OFFICIAL_ROWS[split]:
            entry["error"] = f"{len(frame)} rows, the official release has {OFFICIAL_ROWS[split]}"
            report["ok"] = False
        paths = []
        for image_id in frame["image_id"].fillna("").astype(str):
            paths.append(str(dataset_dir / IMAGES_FOLDER / f"{image_id}.jpg"))
        frames.append(
            pd.DataFrame({"item_id": frame["item_id"].astype(str), "image_path": paths, "split": split})
        )
    images = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["item_id", "image_path"])
    )
    problems = check_image_files(images, deep=deep)
    report["images_checked"] = int(images["image_path"].nunique()) if len(images) else 0
    report["image_problems"] = problems
    if len(problems):
        report["ok"] = False
    return report
