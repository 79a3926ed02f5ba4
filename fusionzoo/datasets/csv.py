"""``csv``: any image-text classification CSV (or a train/test pair)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fusionzoo.data.base import DatasetSplits
from fusionzoo.datasets.base import DatasetBackend, register_dataset


@register_dataset
class CsvDataset(DatasetBackend):
    """Rows of (image path, text column(s), label); ``csv = "train.csv[,test.csv]"`` (one file: a
    stratified ``test_fraction`` is held out). Image paths are relative to ``image_root`` (default: the
    CSV's folder). See docs/data.md for the column options and the label-order rule.
    """

    name = "csv"
    description = "any image-text CSV: image path, text column(s), label"

    def load(
        self,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        csv: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        image_col: str = "image",
        text_cols: Sequence[str] | str = ("text",),
        label_col: str = "label",
        image_root: str | os.PathLike[str] | None = None,
        item_id_col: str | None = None,
        geo_col: str | None = None,
        label_source_col: str | None = None,
        text_separator: str = "\n",
        test_fraction: float = 0.2,
        check_images: bool = True,
        **common: Any,
    ) -> DatasetSplits:
        from fusionzoo.data.csv_files import load_csv

        return load_csv(
            csv,
            image_col=image_col,
            text_cols=text_cols,
            label_col=label_col,
            image_root=image_root,
            item_id_col=item_id_col,
            geo_col=geo_col,
            label_source_col=label_source_col,
            text_separator=text_separator,
            test_fraction=test_fraction,
            data_dir=data_dir,
            check_images=check_images,
            **common,
        )

    def example(self, folder: Path) -> dict[str, Any]:
        """``mine.csv`` (30 rows: file, caption, kind of 3 classes) and one JPEG per row in ``pics/``."""
        import pandas as pd

        from fusionzoo.data.glami_files import jpeg_bytes

        folder = Path(folder)
        (folder / "pics").mkdir(parents=True, exist_ok=True)
        colours = ((200, 30, 30), (30, 60, 200), (30, 160, 60))
        rows = []
        for i in range(30):
            (folder / "pics" / f"{i}.jpg").write_bytes(jpeg_bytes(colours[i % 3]))
            rows.append(
                {"file": f"{i}.jpg", "caption": f"caption {i}", "kind": ("shoe", "bag", "hat")[i % 3]}
            )
        pd.DataFrame(rows).to_csv(folder / "mine.csv", index=False)
        return {
            "csv": str(folder / "mine.csv"),
            "image_col": "file",
            "text_cols": "caption",
            "label_col": "kind",
            "image_root": str(folder / "pics"),
            "data_dir": str(folder),
        }

    def status(self, **options: Any) -> str:
        if not options.get("csv"):
            return "unavailable: the csv dataset needs --data-option csv=train.csv[,test.csv]"
        return super().status(**options)
