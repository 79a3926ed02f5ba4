"""``hateful_memes``: Facebook AI's Hateful Memes (binary: is the meme hateful?), in its release layout."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from fusionzoo.data.base import DataError, DatasetSplits
from fusionzoo.data.checks import resolve_image_paths
from fusionzoo.data.loading import assemble_splits
from fusionzoo.datasets._common import NO_VAL, ReleaseBackend, label_map_locations, raw_frame
from fusionzoo.datasets.base import register_dataset

SPLIT_FILES = ("train", "dev_seen", "dev_unseen", "test_seen", "test_unseen", "dev", "test")
CLASS_NAMES = {"0": "not-hateful", "1": "hateful"}
FIELDS = ("id", "img", "label", "text")
URL = "https://ai.meta.com/tools/hatefulmemes/"
HOW = (
    "Hateful Memes is licence-gated (no public download): accept its licence and download it from the "
    "challenge's page, then unpack it so that the folder holds train.jsonl, dev_seen.jsonl, "
    "test_seen.jsonl, ... and img/"
)


def read_jsonl(path: Path, split: str) -> pd.DataFrame:
    """One split file (a JSON object per line: ``id``, ``img``, ``label``, ``text``) as a raw frame."""
    if not path.is_file():
        raise DataError(
            f"Hateful Memes {split} split: file {path} not found; expected one of "
            + ", ".join(f"{s}.jsonl" for s in SPLIT_FILES)
        )
    records = []
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{path} line {line_no}: not a JSON object ({exc})") from None
            missing = [f for f in FIELDS if f not in record or record[f] is None]
            if missing:
                what = (
                    "no label (an unlabelled test file?)"
                    if missing == ["label"]
                    else "no " + ", ".join(missing)
                )
                raise DataError(
                    f"{path} line {line_no} (id {record.get('id')}): {what}; expected {', '.join(FIELDS)}"
                )
            if str(record["label"]) not in CLASS_NAMES:
                raise DataError(
                    f"{path} line {line_no} (id {record['id']}): label {record['label']!r} is not 0 or 1"
                )
            records.append((line_no, record))
    if not records:
        raise DataError(f"{path} has no rows")
    rows = pd.Series([n for n, _ in records])
    ids = pd.Series([str(r["id"]) for _, r in records])
    labels = [str(r["label"]) for _, r in records]
    images = resolve_image_paths(
        pd.Series([str(r["img"]) for _, r in records]), path.parent, rows=rows, item_ids=ids, source=path
    )
    return raw_frame(
        ids, images, [str(r["text"]) for _, r in records], labels, [CLASS_NAMES[v] for v in labels], rows
    )


@register_dataset
class HatefulMemesDataset(ReleaseBackend):
    """Hateful Memes (Kiela et al. 2020): ``<root>/{train,dev_seen,dev_unseen,test_seen,test_unseen}.jsonl``
    (one JSON object per line: ``id``, ``img`` = ``img/<id>.png``, ``label`` 0/1, ``text`` = the
    meme's overlaid text) and ``<root>/img/*.png``. Classes: 0 ``not-hateful``, 1 ``hateful``.

    ``val_split`` (``dev_seen``) is the validation split (``none``: carved from train with
    ``val_fraction``), ``test_split`` (``test_seen``) the test split; the phase-1 ``dev``/``test`` file
    names are accepted too (an unlabelled test file is an error). The task is binary: the ``auroc``
    metric (area under the ROC curve of p(hateful)) is the challenge's measure, beside accuracy.
    """

    name = "hateful_memes"
    description = "Hateful Memes: meme image + overlaid text, hateful or not (licence-gated)"
    url = URL
    marker = "train.jsonl"
    how = HOW

    def load(
        self,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        root: str | os.PathLike[str] | None = None,
        val_split: str = "dev_seen",
        test_split: str = "test_seen",
        check_images: bool = True,
        **common: Any,
    ) -> DatasetSplits:
        val = None if str(val_split).lower() in NO_VAL else str(val_split)
        for option, value in (("val_split", val), ("test_split", test_split)):
            if value is not None and value not in SPLIT_FILES[1:]:
                raise DataError(f"{option}={value!r}: expected one of {', '.join(SPLIT_FILES[1:])}")
        if val == test_split:
            raise DataError(f"val_split and test_split are both {val!r}; choose two different files")
        base = self.release_root(root, data_dir)
        files = {"train": base / "train.jsonl", "test": base / f"{test_split}.jsonl"}
        if val is not None:
            files["val"] = base / f"{val}.jsonl"
        raw = {split: read_jsonl(path, path.stem) for split, path in files.items()}
        return assemble_splits(
            name=self.name,
            root=base,
            raw_train=raw["train"],
            raw_test=raw["test"],
            raw_val=raw.get("val"),
            sources=files,
            label_map_locations=label_map_locations(self.name, str(base), data_dir),
            info={"dataset_dir": str(base), "files": {k: str(v) for k, v in files.items()}},
            options={"format": self.name, "val_split": val, "test_split": test_split},
            check_images=check_images,
            **common,
        )

    def example(self, folder: Path) -> dict[str, Any]:
        """``hateful_memes/`` with 24 train, 8 per dev and 10 per test rows, one PNG per meme in ``img/``."""
        from fusionzoo.data.published_files import write_hateful_memes

        return {"root": str(write_hateful_memes(Path(folder) / "hateful_memes")), "data_dir": str(folder)}
