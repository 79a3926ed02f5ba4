"""Image files for the ``hf`` backend: the rest of fusionzoo reads images from files (``image_path``),
Hugging Face datasets hold them as an ``Image`` feature (``{"bytes", "path"}``), file paths or raw bytes.

:func:`image_files` gives one absolute path per row:

- a local file the dataset points to (an ``imagefolder``'s images, an ``Image`` feature without bytes)
  is used where it is, not copied;
- bytes (Parquet/Arrow files, saved datasets, the Hub) are written once into a **content-addressed**
  folder ``<data dir>/hf/images/<sha256[:2]>/<sha256>.<jpg|png>`` (JPEG and PNG bytes as they are;
  any other format, e.g. WebP, decoded and re-encoded as PNG so every file has a JPEG/PNG signature);
  identical images are stored once, a file already there is not rewritten (so its mtime, part of the
  dataset fingerprint, stays);
- the paths of a split are remembered in a manifest named by the Hugging Face split's own fingerprint
  and the column (``<data dir>/hf/images/manifests/<fingerprint>-<column>.json``), so a second load
  reads neither the bytes nor the hashes again; a manifest whose files are gone is rebuilt;
- a row without an image gets a path that does not exist, so ``on_bad_image`` (skip: dropped with a
  warning) applies as to any missing file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

from fusionzoo.data.base import DataError
from fusionzoo.io import atomic_write

BATCH_ROWS = 256
SIGNATURES = {b"\xff\xd8\xff": ".jpg", b"\x89PNG\r\n\x1a\n": ".png"}


def extension_of(data: bytes) -> str | None:
    return next((ext for head, ext in SIGNATURES.items() if data.startswith(head)), None)


def store_bytes(data: bytes, folder: Path) -> str:
    """Write ``data`` (an encoded image) content-addressed under ``folder``; returns the path."""
    digest = hashlib.sha256(data).hexdigest()
    ext = extension_of(data)
    if ext is None:  # WebP, GIF, BMP, ...: decoded once and stored as PNG
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as image:
                buffer = io.BytesIO()
                image.convert("RGB").save(buffer, format="PNG")
        except (OSError, UnidentifiedImageError, ValueError):
            return str(folder / "undecodable" / digest)  # missing: on_bad_image decides
        data, ext = buffer.getvalue(), ".png"
    target = folder / digest[:2] / f"{digest}{ext}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, data)
    return str(target)


def _path_of(value: Any, base: Path | None, folder: Path, row: int) -> str:
    """The file of one cell: an ``Image`` dict, a path string or bytes."""
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        if data:
            return store_bytes(data, folder)
        value = path
    if isinstance(value, bytes | bytearray):
        return store_bytes(bytes(value), folder)
    if isinstance(value, str) and value.strip():
        path = Path(value).expanduser()
        if not path.is_absolute():
            if base is None:
                raise DataError(f"row {row}: image path {value!r} is relative and the dataset has no folder")
            path = base / path
            if base.resolve() not in path.resolve().parents:
                raise DataError(f"row {row}: image {value!r} escapes the dataset folder {base}")
        return str(path.resolve())
    return str(folder / "missing" / f"row-{row}")


def image_files(dataset: Any, column: str, *, base: Path | None, folder: Path) -> list[str]:
    """One absolute image path per row of the Hugging Face ``dataset``'s ``column`` (see the module
    docstring); ``base`` resolves relative path strings, ``folder`` holds the written files."""
    from datasets import Image

    feature = dataset.features[column]
    if isinstance(feature, Image) and feature.decode:
        dataset = dataset.cast_column(column, Image(decode=False))
    manifest = (
        folder
        / "manifests"
        / f"{dataset._fingerprint}-{hashlib.sha256(column.encode()).hexdigest()[:8]}.json"
    )
    if manifest.is_file():
        try:
            paths = json.loads(manifest.read_text(encoding="utf-8"))
        except ValueError:
            paths = None
        if (
            isinstance(paths, list)
            and len(paths) == len(dataset)
            and all(os.path.exists(p) or "/missing/" in p or "/undecodable/" in p for p in paths)
        ):
            return paths
    paths = []
    for batch in dataset.select_columns([column]).iter(batch_size=BATCH_ROWS):
        for value in batch[column]:
            paths.append(_path_of(value, base, folder, len(paths)))
    manifest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(manifest, json.dumps(paths))
    return paths
