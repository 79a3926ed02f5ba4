"""``glami1m``: GLAMI-1M (1.1M fashion products, 191 classes, 13 languages), or any set in its layout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fusionzoo.data.base import DataError, DatasetSplits
from fusionzoo.datasets.base import DatasetBackend, register_dataset


@register_dataset
class Glami1mDataset(DatasetBackend):
    """GLAMI-1M in its official layout (``GLAMI-1M-dataset/GLAMI-1M-{train,test}.csv`` + ``images/``).

    ``root``: the folder holding ``GLAMI-1M-dataset`` (default ``<data dir>/glami1m``); text = name +
    description (``text_fields``, ``text_separator``). Download with ``fusionzoo data glami1m
    --download``; ``fusionzoo data glami1m --verify`` checks CSVs, row counts and images.
    """

    name = "glami1m"
    description = "GLAMI-1M (or any dataset in its exact CSV + images layout)"
    url = "https://github.com/glami/glami-1m"

    def load(
        self,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        root: str | os.PathLike[str] | None = None,
        text_fields: tuple[str, ...] = ("name", "description"),
        text_separator: str = "\n",
        check_images: bool = True,
        **common: Any,
    ) -> DatasetSplits:
        from fusionzoo.data.glami import load_glami

        return load_glami(
            root,
            data_dir=data_dir,
            text_fields=text_fields,
            text_separator=text_separator,
            check_images=check_images,
            **common,
        )

    def example(self, folder: Path) -> dict[str, Any]:
        """24 train + 8 test rows of 3 classes in the official layout (``fusionzoo.data.glami_files``)."""
        from fusionzoo.data.glami_files import glami_rows, write_glami

        root = Path(folder) / "glami"
        write_glami(root, glami_rows(24), glami_rows(8, split="test", start=100))
        return {"root": str(root), "data_dir": str(folder)}

    def status(self, **options: Any) -> str:
        from fusionzoo.data.glami import find_dataset_dir
        from fusionzoo.data.paths import glami_dir, resolve_data_dir

        root = options.get("root")
        if root is None:
            root = glami_dir(options.get("data_dir"))
            if not root.exists():
                root = resolve_data_dir(options.get("data_dir"))
        try:
            find_dataset_dir(root)
        except DataError:
            return f"missing: not found under {root}; get it with `fusionzoo data glami1m --download`"
        return super().status(**options)

    def verify(self, *, deep: bool = False, **options: Any) -> dict[str, Any]:
        """The official checks: CSV columns, row counts against the release, every image file."""
        from fusionzoo.data.glami import verify_glami
        from fusionzoo.data.paths import glami_dir

        return verify_glami(options.get("root") or glami_dir(options.get("data_dir")), deep=deep)
