"""Shared by the backends of published datasets (Hateful Memes, UPMC Food-101, N24News, Hugging Face):
finding the dataset's folder, the "where to get it" message, raw frames, label-map locations, text
fields and the status line of a dataset that is not there. Not a backend (the leading ``_`` keeps it
out of the registry's import loop)."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from fusionzoo.data.base import DataError
from fusionzoo.data.checks import RAW_COLUMNS
from fusionzoo.data.paths import labelmaps_dir, resolve_data_dir
from fusionzoo.datasets.base import DatasetBackend

NO_VAL = ("none", "", "carve")  # val_split values that carve the validation split out of train


def dataset_root(
    name: str,
    root: str | os.PathLike[str] | None,
    data_dir: str | os.PathLike[str] | None,
    marker: str,
    *,
    url: str,
    how: str,
) -> Path:
    """The folder holding ``marker`` (a file or folder of the release): ``root`` or one of its
    ``<name>``/``data`` subfolders, default ``<data dir>/<name>``; a clear error with ``how`` (where to
    get the data) when it is not there."""
    base = Path(root).expanduser() if root is not None else resolve_data_dir(data_dir) / name
    candidates = [base, base / name, base / "data"]
    for candidate in candidates:
        if (candidate / marker).exists():
            return candidate.resolve()
    raise DataError(
        f"{name}: no {marker} under {base} (looked in {', '.join(str(c) for c in candidates)}). {how} "
        f"({url}), then pass --data-option root=DIR or unpack it to {resolve_data_dir(data_dir) / name}"
    )


def raw_frame(
    item_ids: Sequence[Any],
    image_paths: Sequence[str],
    texts: Sequence[str],
    raw_labels: Sequence[str],
    class_names: Sequence[str],
    rows: Sequence[int],
) -> pd.DataFrame:
    """A raw frame (:data:`fusionzoo.data.checks.RAW_COLUMNS`) without geo and label source."""
    frame = pd.DataFrame(
        {
            "item_id": pd.Series(item_ids, dtype=object).astype(str),
            "image_path": pd.Series(image_paths, dtype=object),
            "text": pd.Series(texts, dtype=object).fillna("").astype(str).str.strip(),
            "raw_label": pd.Series(raw_labels, dtype=object).astype(str),
            "class_name": pd.Series(class_names, dtype=object).astype(str),
            "geo": "",
            "label_source": "unknown",
            "row": pd.Series(rows, dtype="int64"),
        }
    )
    return frame[list(RAW_COLUMNS)]


def label_map_locations(name: str, key: str, data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """``<data dir>/labelmaps/<name>-<hash of key>.json`` (a release folder may be read-only)."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    with contextlib.suppress(DataError):
        return [labelmaps_dir(data_dir) / f"{name}-{digest}.json"]
    return []


def text_fields(value: str | Sequence[str], valid: Sequence[str], option: str) -> list[str]:
    """``"headline"``, ``"headline+abstract"``, ``"headline,abstract"`` or a list → checked field names."""
    if isinstance(value, str):
        value = value.replace("+", ",").split(",")
    fields = [str(v).strip() for v in value if str(v).strip()]
    unknown = [f for f in fields if f not in valid]
    if not fields or unknown:
        raise DataError(
            f"{option}={'+'.join(fields) or value!r}: expected one or more of {', '.join(valid)} "
            f"(joined with '+' or ';'){'; unknown: ' + ', '.join(unknown) if unknown else ''}"
        )
    return fields


class ReleaseBackend(DatasetBackend):
    """A published dataset read from its release folder: ``marker`` (a file of the release) locates the
    folder (:func:`dataset_root`), ``how`` says where to get the data; :meth:`status` is "missing: ..."
    with that advice until the folder is there."""

    marker: ClassVar[str] = ""
    how: ClassVar[str] = ""

    def release_root(
        self, root: str | os.PathLike[str] | None, data_dir: str | os.PathLike[str] | None
    ) -> Path:
        return dataset_root(self.name, root, data_dir, self.marker, url=self.url, how=self.how)

    def status(self, **options: Any) -> str:
        try:
            self.release_root(options.get("root"), options.get("data_dir"))
        except DataError as exc:
            return "missing: " + str(exc).splitlines()[0]
        return super().status(**options)
