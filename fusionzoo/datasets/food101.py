"""``food101``: UPMC Food-101 (recipe web pages: a food photo + the page title, 101 dishes), as published."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from fusionzoo.data.base import DataError, DatasetSplits
from fusionzoo.data.checks import note_replacements, resolve_image_paths
from fusionzoo.data.loading import assemble_splits
from fusionzoo.datasets._common import ReleaseBackend, label_map_locations, raw_frame
from fusionzoo.datasets.base import register_dataset

CSV_COLUMNS = ("image_name", "text", "label")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
URL = "https://www.kaggle.com/datasets/gianmarco96/upmcfood101"
HOW = (
    "UPMC Food-101 has no download with a published checksum: download it (e.g. from Kaggle, "
    "gianmarco96/upmcfood101, or from the authors' page http://visiir.lip6.fr/) and unpack it so that "
    "the folder holds images/{train,test}/<class>/*.jpg and texts/{train,test}_titles.csv"
)


def titles_csv(root: Path, split: str) -> Path:
    return root / "texts" / f"{split}_titles.csv"


def read_titles(root: Path, split: str, info: dict[str, Any]) -> pd.DataFrame:
    """``texts/<split>_titles.csv``: rows ``image_name,text,label`` without a header (a header line
    whose first field is not an image file name is skipped); the image is
    ``images/<split>/<label>/<image_name>``."""
    path = titles_csv(root, split)
    if not path.is_file():
        raise DataError(f"UPMC Food-101 {split} split: file {path} not found ({HOW})")
    try:
        frame = pd.read_csv(
            path,
            header=None,
            names=list(CSV_COLUMNS),
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            encoding="utf-8",
            encoding_errors="replace",
            index_col=False,
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty (expected rows image_name,text,label)") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path} is not a CSV of rows image_name,text,label: {exc}") from None
    frame["__row"] = range(1, len(frame) + 1)
    first = str(frame["image_name"].iloc[0]) if len(frame) else ""
    if len(frame) and not first.lower().endswith(IMAGE_SUFFIXES):
        frame = frame.iloc[1:]  # a header line
    if frame.empty:
        raise DataError(f"{path} has no rows")
    labels = frame["label"].fillna("").str.strip()
    bad = (labels == "") | labels.str.contains(r"[/\\]", regex=True)
    if bad.any():
        row = frame.loc[bad].iloc[0]
        raise DataError(
            f"{path} line {row['__row']}: label {row['label']!r} is empty or not a class folder name "
            "(expected rows image_name,text,label)"
        )
    names = frame["image_name"].fillna("").str.strip()
    ids = split + ":" + names
    relative = labels + "/" + names
    images = resolve_image_paths(
        relative, root / "images" / split, rows=frame["__row"], item_ids=ids, source=path
    )
    raw = raw_frame(ids, images, frame["text"], labels, labels, frame["__row"])
    replaced = int(raw["text"].str.contains("\ufffd", regex=False).sum())
    note_replacements(replaced, path, raw, info)
    return raw


@register_dataset
class Food101Dataset(ReleaseBackend):
    """UPMC Food-101 (Wang et al. 2015): ``<root>/images/{train,test}/<class>/<image_name>`` and
    ``<root>/texts/{train,test}_titles.csv`` with rows ``image_name,text,label`` (no header; the text is
    the recipe page's title). Labels are the class folder names (``apple_pie`` ...); label ``i`` is the
    i-th class name in sorted order. The validation split is carved from train (``val_fraction``).
    No download with a checksum exists: ``status`` says where to get it.
    """

    name = "food101"
    description = "UPMC Food-101: recipe photo + page title, 101 dishes"
    url = URL
    marker = "texts/train_titles.csv"
    how = HOW

    def load(
        self,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        root: str | os.PathLike[str] | None = None,
        check_images: bool = True,
        **common: Any,
    ) -> DatasetSplits:
        base = self.release_root(root, data_dir)
        info: dict[str, Any] = {"dataset_dir": str(base)}
        raw = {split: read_titles(base, split, info) for split in ("train", "test")}
        return assemble_splits(
            name=self.name,
            root=base,
            raw_train=raw["train"],
            raw_test=raw["test"],
            sources={split: titles_csv(base, split) for split in ("train", "test")},
            label_map_locations=label_map_locations(self.name, str(base), data_dir),
            info=info,
            options={"format": self.name},
            check_images=check_images,
            **common,
        )

    def example(self, folder: Path) -> dict[str, Any]:
        """``food101/`` with 3 classes, 30 train and 12 test recipes, one JPEG each."""
        from fusionzoo.data.published_files import write_food101

        return {"root": str(write_food101(Path(folder) / "food101")), "data_dir": str(folder)}
