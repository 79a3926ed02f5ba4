"""``n24news``: N24News (New York Times articles: image + headline/abstract/caption/body, 24 sections)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fusionzoo.data.base import DataError, DatasetSplits
from fusionzoo.data.checks import join_text, resolve_image_paths
from fusionzoo.data.loading import assemble_splits
from fusionzoo.datasets._common import (
    NO_VAL,
    ReleaseBackend,
    label_map_locations,
    raw_frame,
    text_fields,
)
from fusionzoo.datasets.base import register_dataset

TEXT_FIELDS = {"headline": "headline", "abstract": "abstract", "caption": "caption", "body": "article"}
URL = "https://github.com/billywzh717/N24News"
HOW = (
    "N24News has no download with a published checksum: get the release from the authors' repository "
    "(its Google Drive / Baidu links) and unpack it so that the folder holds news/nytimes_train.json, "
    "news/nytimes_dev.json, news/nytimes_test.json and imgs/<image_id>.jpg"
)


def news_file(root: Path, split: str) -> Path:
    return root / "news" / f"nytimes_{split}.json"


def read_news(root: Path, split: str, fields: Sequence[str], separator: str) -> pd.DataFrame:
    """``news/nytimes_<split>.json`` (a JSON list of articles with ``section``, ``image_id``,
    ``headline``, ``abstract``, ``caption``, ``article``) as a raw frame; images ``imgs/<image_id>.jpg``."""
    path = news_file(root, split)
    if not path.is_file():
        raise DataError(f"N24News {split} split: file {path} not found ({HOW})")
    try:
        articles = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(f"{path} is not JSON: {exc}") from None
    if not isinstance(articles, list) or not articles:
        raise DataError(f"{path}: expected a non-empty JSON list of articles")
    keys = [TEXT_FIELDS[f] for f in fields]
    required = ("section", "image_id", *keys)
    for index, article in enumerate(articles):
        missing = [k for k in required if not isinstance(article, dict) or article.get(k) is None]
        if missing:
            raise DataError(
                f"{path} article #{index} (image_id {article.get('image_id') if isinstance(article, dict) else '?'}): "
                f"no {', '.join(missing)}; expected the fields {', '.join(required)}"
            )
    frame = pd.DataFrame(articles)
    rows = pd.Series(range(len(frame)))
    ids = frame["image_id"].astype(str).str.strip()
    if "article_id" in frame.columns:
        ids = frame["article_id"].fillna(frame["image_id"]).astype(str).str.strip()
    images = resolve_image_paths(
        frame["image_id"].astype(str), root / "imgs", rows=rows, item_ids=ids, source=path, suffix=".jpg"
    )
    sections = frame["section"].astype(str).str.strip()
    text = join_text(frame.astype({k: str for k in keys}), keys, separator)
    return raw_frame(ids, images, text, sections, sections, rows)


@register_dataset
class N24NewsDataset(ReleaseBackend):
    """N24News (Wang et al., LREC 2022): ``<root>/news/nytimes_{train,dev,test}.json`` (JSON lists of
    articles: ``section`` = the label, one of 24; ``image_id``; ``headline``, ``abstract``, ``caption``,
    ``article`` = the body) and ``<root>/imgs/<image_id>.jpg``.

    ``text_field``: ``headline`` (default), ``abstract``, ``caption``, ``body`` or several joined with
    ``+`` (``headline+abstract``; ``;`` on the command line) in that order, separated by
    ``text_separator``. ``val_split`` ``dev`` (``none``: carved from train). Label ``i`` is the i-th
    section name in sorted order.
    """

    name = "n24news"
    description = "N24News: NYT article image + headline/abstract/caption/body, 24 sections"
    url = URL
    marker = "news/nytimes_train.json"
    how = HOW

    def load(
        self,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        root: str | os.PathLike[str] | None = None,
        text_field: str | Sequence[str] = "headline",
        text_separator: str = "\n",
        val_split: str = "dev",
        check_images: bool = True,
        **common: Any,
    ) -> DatasetSplits:
        fields = text_fields(text_field, list(TEXT_FIELDS), "text_field")
        if str(val_split).lower() not in (*NO_VAL, "dev"):
            raise DataError(f"val_split={val_split!r}: expected dev or none (carve it out of train)")
        base = self.release_root(root, data_dir)
        splits = ("train", "test") if str(val_split).lower() in NO_VAL else ("train", "dev", "test")
        raw = {split: read_news(base, split, fields, text_separator) for split in splits}
        sources = {("val" if s == "dev" else s): news_file(base, s) for s in splits}
        return assemble_splits(
            name=self.name,
            root=base,
            raw_train=raw["train"],
            raw_test=raw["test"],
            raw_val=raw.get("dev"),
            sources=sources,
            label_map_locations=label_map_locations(self.name, str(base), data_dir),
            info={"dataset_dir": str(base)},
            options={
                "format": self.name,
                "text_field": fields,
                "text_separator": text_separator,
                "val_split": "dev" if "dev" in raw else None,
            },
            check_images=check_images,
            **common,
        )

    def example(self, folder: Path) -> dict[str, Any]:
        """``n24news/`` with 4 sections, 32 train, 8 dev and 12 test articles, one JPEG each."""
        from fusionzoo.data.published_files import write_n24news

        return {"root": str(write_n24news(Path(folder) / "n24news")), "data_dir": str(folder)}
