"""Any image-text classification CSV, through the same code path as GLAMI-1M.

    fusionzoo ... --dataset csv --data-option csv=train.csv[,test.csv] --data-option image_col=image \\
        --data-option 'text_cols=title;body' --data-option label_col=label --data-option image_root=images/

- ``image_col`` holds paths relative to ``image_root`` (default: the train CSV's folder); absolute
  paths and paths leaving ``image_root`` are rejected naming the row.
- ``text_cols``: one or more columns joined with ``text_separator`` (NaN → "").
- ``label_col``: any values; label ``i`` is the i-th label in ascending order (numeric when every label
  is an integer, else text), computed from train and stored in ``<data dir>/labelmaps/``. A whole
  number written ``3.0`` is read as ``3`` (warned); a label that is not valid UTF-8, or one number
  spelt two ways (``03`` and ``3``), is an error naming the file, line and value
  (:func:`~fusionzoo.data.checks.class_labels`).
- Optional ``item_id_col`` (default: ``train:<line>`` / ``test:<line>``), ``geo_col``,
  ``label_source_col`` (default ``unknown``: not human-labelled).
- Without a test CSV a stratified, seeded ``test_fraction`` of the rows becomes the test split.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fusionzoo.data.base import DataError, DatasetSplits
from fusionzoo.data.checks import (
    class_labels,
    join_text,
    normalise_label_source,
    note_replacements,
    read_csv_checked,
    resolve_image_paths,
)
from fusionzoo.data.loading import assemble_splits, stratified_split
from fusionzoo.data.paths import labelmaps_dir


def parse_csv_list(csv: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """``"train.csv,test.csv"`` or a list → one or two paths."""
    if isinstance(csv, str | os.PathLike):
        items = [part.strip() for part in str(csv).split(",") if part.strip()]
    else:
        items = [str(part) for part in csv]
    if not 1 <= len(items) <= 2:
        raise DataError(f"the csv option expects train.csv or train.csv,test.csv; got {csv!r}")
    return [Path(item).expanduser() for item in items]


def required_columns(
    image_col: str, text_cols: Sequence[str], label_col: str, *optional: str | None
) -> list[str]:
    """The columns a CSV must have: image, text(s), label and each optional column that is named."""
    return list(dict.fromkeys([image_col, *text_cols, label_col, *(c for c in optional if c)]))


def read_split(
    path: Path,
    split: str,
    *,
    image_col: str,
    text_cols: Sequence[str],
    label_col: str,
    image_root: Path,
    item_id_col: str | None,
    geo_col: str | None,
    label_source_col: str | None,
    text_separator: str,
    info: dict[str, Any],
) -> pd.DataFrame:
    """One user CSV as a raw frame (see :data:`fusionzoo.data.checks.RAW_COLUMNS`)."""
    required = required_columns(image_col, text_cols, label_col, item_id_col, geo_col, label_source_col)
    frame, replaced = read_csv_checked(path, required, what=f"{split} CSV")
    labels = frame[label_col].fillna("").astype(str).str.strip()
    empty = labels == ""
    if empty.any():
        first = frame.loc[empty].iloc[0]
        raise DataError(f"{path} line {first['__row']}: empty label in column {label_col!r}")
    labels = class_labels(labels, frame["__row"], path, label_col, info)
    if item_id_col:
        item_ids = frame[item_id_col].fillna("").astype(str).str.strip()
        if (item_ids == "").any():
            raise DataError(
                f"{path} line {frame.loc[item_ids == '', '__row'].iloc[0]}: empty {item_id_col!r}"
            )
    else:
        item_ids = f"{split}:" + frame["__row"].astype(str)
    raw = pd.DataFrame(
        {
            "item_id": item_ids,
            "image_path": resolve_image_paths(
                frame[image_col], image_root, rows=frame["__row"], item_ids=item_ids, source=path
            ),
            "text": join_text(frame, list(text_cols), text_separator),
            "raw_label": labels,
            "class_name": labels,
            "geo": frame[geo_col] if geo_col else "",
            "label_source": normalise_label_source(frame[label_source_col])
            if label_source_col
            else "unknown",
            "row": frame["__row"],
        }
    )
    note_replacements(replaced, path, raw, info)
    return raw


def load_csv(
    csv: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    *,
    image_col: str = "image",
    text_cols: Sequence[str] | str = ("text",),
    label_col: str = "label",
    image_root: str | os.PathLike[str] | None = None,
    item_id_col: str | None = None,
    geo_col: str | None = None,
    label_source_col: str | None = None,
    text_separator: str = "\n",
    test_fraction: float = 0.2,
    data_dir: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    per_class_cap: int | None = None,
    label_source: str = "all",
    geos: Sequence[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    on_bad_image: str = "skip",
    check_images: bool = True,
) -> DatasetSplits:
    """Load a user image-text CSV (or a train/test pair) as :class:`DatasetSplits`."""
    if csv is None:
        raise DataError("the csv dataset needs the option csv=train.csv[,test.csv] (--data-option csv=...)")
    paths = parse_csv_list(csv)
    if isinstance(text_cols, str):
        text_cols = [c.strip() for c in text_cols.split(",") if c.strip()]
    required = required_columns(image_col, text_cols, label_col, item_id_col, geo_col, label_source_col)
    for path, split in zip(paths, ("train", "test"), strict=False):  # before the image root (its folder)
        if not path.is_file():
            folder = "" if path.parent.is_dir() else f": its folder {path.parent} does not exist"
            raise DataError(
                f"{split} CSV: file {path} not found{folder} (expected a CSV with columns {', '.join(required)})"
            )
    root = Path(image_root).expanduser() if image_root is not None else paths[0].resolve().parent
    if not root.is_dir():
        raise DataError(f"image root {root} is not a folder (the option image_root)")
    info: dict[str, Any] = {"csv": [str(p) for p in paths], "image_root": str(root.resolve())}
    options = dict(
        image_col=image_col,
        text_cols=list(text_cols),
        label_col=label_col,
        image_root=root,
        item_id_col=item_id_col,
        geo_col=geo_col,
        label_source_col=label_source_col,
        text_separator=text_separator,
        info=info,
    )
    raw_train = read_split(paths[0], "train", **options)
    if len(paths) == 2:
        raw_test = read_split(paths[1], "test", **options)
    else:
        if not 0 < test_fraction < 1:
            raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
        codes = pd.factorize(raw_train["raw_label"])[0]
        held_out = stratified_split(codes, test_fraction, seed + 1000, raw_train["image_path"].to_numpy())
        raw_test = raw_train.loc[held_out]
        raw_train = raw_train.loc[~held_out]
        info["test_from_train"] = {"fraction": test_fraction, "seed": seed + 1000}
    key = hashlib.sha256(str(paths[0].resolve()).encode()).hexdigest()[:16]
    return assemble_splits(
        name="csv",
        root=root.resolve(),
        raw_train=raw_train,
        raw_test=raw_test,
        sources={"train": paths[0], "test": paths[-1]},
        label_map_locations=[labelmaps_dir(data_dir) / f"csv-{key}.json"],
        info=info,
        options={
            "format": "csv",
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in options.items() if k != "info"},
            "test_fraction": test_fraction if len(paths) == 1 else None,
        },
        limit=limit,
        per_class_cap=per_class_cap,
        label_source=label_source,
        geos=geos,
        val_fraction=val_fraction,
        seed=seed,
        on_bad_image=on_bad_image,
        check_images=check_images,
    )
