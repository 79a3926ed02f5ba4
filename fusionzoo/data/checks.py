"""Reading and checking the raw rows of a dataset, shared by every loader (GLAMI-1M, synth, CSV).

:func:`read_csv_checked` reads a CSV with exact errors (missing columns, undecodable bytes counted);
a loader turns each split into a *raw frame* with the columns of :data:`RAW_COLUMNS` using
:func:`join_text`, :func:`resolve_image_paths` and :func:`normalise_label_source`.
:func:`fusionzoo.data.loading.assemble_splits` then calls the checks here: duplicate item ids
(:func:`dedupe`), image files (:func:`stat_images`, :func:`check_images_exist`,
:func:`image_files_identity`) and file identities for the fingerprint (:func:`file_identity`).
Warnings are collected in the dataset's ``info`` and raised as :class:`DataWarning` (:func:`warn`).
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from stat import S_ISREG
from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.data.base import DataError, DataWarning

RAW_COLUMNS = ("item_id", "image_path", "text", "raw_label", "class_name", "geo", "label_source", "row")
REPLACEMENT_CHAR = "\ufffd"
_SAFE_NAME = re.compile(r"[0-9A-Za-z_][0-9A-Za-z_.-]*")
_SHOW = 5  # how many example ids a warning lists


def examples(values: Iterable[Any]) -> str:
    values = [str(v) for v in values]
    more = f", … ({len(values) - _SHOW} more)" if len(values) > _SHOW else ""
    return ", ".join(values[:_SHOW]) + more


def warn(info: dict[str, Any], message: str) -> None:
    """Emit a :class:`DataWarning` and keep the message in ``info["warnings"]`` for reports."""
    info.setdefault("warnings", []).append(message)
    warnings.warn(message, DataWarning, stacklevel=3)


# --------------------------------------------------------------------------------------------- reading
def read_csv_checked(path: Path, required: Sequence[str], *, what: str) -> tuple[pd.DataFrame, int]:
    """Read a UTF-8 CSV as strings; raise :class:`DataError` naming the file for a missing file/column.

    Empty fields become NaN; other values stay strings (``"NA"`` is a valid product name). A UTF-8
    byte-order mark is ignored. Bytes that are not valid UTF-8 are replaced by U+FFFD; returns ``(frame, rows_with_replacements)``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what}: file {path} not found (expected a CSV with columns {', '.join(required)})")
    try:
        frame = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            encoding="utf-8-sig",  # tolerate a byte-order mark (Excel exports)
            encoding_errors="replace",
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{what}: {path} is empty (expected columns {', '.join(required)})") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{what}: {path} is not a valid CSV: {exc}") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            f"{what}: {path} lacks column(s) {', '.join(missing)}; expected {', '.join(required)}, "
            f"found {', '.join(map(str, frame.columns))}"
        )
    frame["__row"] = np.arange(2, len(frame) + 2)  # line 1 is the header
    replaced = np.zeros(len(frame), dtype=bool)
    for column in frame.columns:
        if column != "__row":
            replaced |= frame[column].str.contains(REPLACEMENT_CHAR, regex=False, na=False).to_numpy()
    return frame, int(replaced.sum())


def join_text(frame: pd.DataFrame, columns: Sequence[str], separator: str = "\n") -> pd.Series:
    """Concatenate text columns (NaN → "") with ``separator``, skipping empty parts, stripped."""
    if not columns:
        raise DataError("at least one text column is needed")
    parts = [frame[c].fillna("").astype(str).str.strip() for c in columns]
    text = parts[0]
    for part in parts[1:]:
        both = (text != "") & (part != "")
        text = text.where(~both, text + separator + part).where(both | (text != ""), part)
    return text.astype(object)


def resolve_image_paths(
    relative: pd.Series,
    image_root: Path,
    *,
    rows: pd.Series,
    item_ids: pd.Series,
    source: Path,
    suffix: str = "",
) -> pd.Series:
    """Absolute image paths ``image_root / (relative + suffix)``; anything escaping the root is an error.

    Raises :class:`DataError` naming the CSV row and item id for an empty value, an absolute path or a
    path that leaves ``image_root`` (``../``).
    """
    root = os.path.normpath(str(Path(image_root).resolve()))
    values = relative.fillna("").astype(str).str.strip()
    simple = values.str.fullmatch(_SAFE_NAME.pattern).to_numpy()
    out = (root + os.sep + values + suffix).to_numpy(dtype=object)
    for position in np.flatnonzero(~simple):
        value = values.iat[position]
        where = f"{source} line {rows.iat[position]} (item_id {item_ids.iat[position]})"
        if value == "":
            raise DataError(f"{where}: empty image reference")
        joined = os.path.normpath(os.path.join(root, value + suffix))
        if os.path.isabs(value) or not joined.startswith(root + os.sep):
            raise DataError(
                f"{where}: image {value!r} escapes the image folder {root}; image references must be "
                "relative paths inside it"
            )
        out[position] = joined
    escaping = _escaping_link(out, root)
    if escaping is not None:
        position, target = escaping
        raise DataError(
            f"{source} line {rows.iat[position]} (item_id {item_ids.iat[position]}): image "
            f"{values.iat[position]!r} is reached through a symbolic link and lies at {target}, outside the "
            f"image folder {root}; image references must stay inside it (links are followed before checking)"
        )
    return pd.Series(out, index=relative.index, dtype=object)


def _escaping_link(paths: np.ndarray, root: str) -> tuple[int, str] | None:
    """``(position, real path)`` of the first of ``paths`` (inside ``root`` by name) that a symbolic
    link (the file or a folder on the way) takes outside ``root``, else ``None``. One directory listing
    per folder finds the linked files, so a folder of a million images costs one ``scandir``."""
    real_root = os.path.realpath(root)

    def inside(path: str) -> bool:
        return path == real_root or path.startswith(real_root + os.sep)

    folders: dict[str, tuple[str, set[str]]] = {}
    found: list[tuple[int, str]] = []
    unique, first = np.unique(paths.astype(str), return_index=True)
    for path, position in zip(unique, first, strict=True):
        folder, name = os.path.split(path)
        if folder not in folders:
            try:
                with os.scandir(folder) as entries:
                    links = {entry.name for entry in entries if entry.is_symlink()}
            except OSError:  # a missing folder: its images are reported missing later
                links = set()
            folders[folder] = (os.path.realpath(folder), links)
        real_folder, links = folders[folder]
        if not inside(real_folder):
            found.append((int(position), os.path.join(real_folder, name)))
        elif name in links and not inside(target := os.path.realpath(path)):
            found.append((int(position), target))
    return min(found) if found else None  # the first row that escapes


def class_labels(
    labels: pd.Series, rows: pd.Series, source: Path, column: str, info: dict[str, Any]
) -> pd.Series:
    """A CSV's stripped label column as class labels, each class spelled one way.

    A label with bytes that are not valid UTF-8 is refused (each such spelling would become a class
    of its own); a whole number written with a decimal point (``3.0``, as spreadsheets and pandas
    write an integer column with gaps) is read as the integer, with a warning, so ``3`` and ``3.0`` are
    one class; two other spellings of one number (``03`` and ``3``) are refused naming both."""
    undecodable = labels.str.contains(REPLACEMENT_CHAR, regex=False).to_numpy()
    if undecodable.any():
        first = int(np.flatnonzero(undecodable)[0])
        raise DataError(
            f"{source} line {rows.iat[first]}: the label {labels.iat[first]!r} in column {column!r} has bytes "
            f"that are not valid UTF-8 (shown as U+FFFD; {int(undecodable.sum())} row(s)), so it would be a "
            "class of its own: save the CSV as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        )
    integral = labels.str.fullmatch(r"[+-]?\d+\.0+").to_numpy()
    if integral.any():
        written = labels[integral]
        labels = labels.where(~integral, labels.str.replace(r"\.0+$", "", regex=True))
        warn(
            info,
            f"{source}: {int(integral.sum())} label(s) in column {column!r} are whole numbers written with a "
            f"decimal point ({examples(pd.unique(written))}); read as integers, so 3 and 3.0 are one class",
        )
    numbers = pd.to_numeric(labels, errors="coerce")
    numeric = numbers.notna().to_numpy()
    if numeric.any():
        spellings = labels[numeric].groupby(numbers[numeric].to_numpy()).unique()
        for value, spelt in spellings.items():
            if len(spelt) > 1:
                lines = [int(rows[labels == s].iat[0]) for s in spelt[:2]]
                raise DataError(
                    f"{source}: the labels {spelt[0]!r} (line {lines[0]}) and {spelt[1]!r} (line {lines[1]}) in "
                    f"column {column!r} are the same number {value:g} written two ways; write each class one way"
                )
    return labels


def normalise_label_source(values: pd.Series) -> pd.Series:
    return values.fillna("unknown").astype(str).str.strip().replace("", "unknown").astype(object)


def dedupe(raw: pd.DataFrame, split: str, source: Path, info: dict[str, Any]) -> pd.DataFrame:
    duplicated = raw["item_id"].duplicated(keep="first")
    if duplicated.any():
        ids = raw.loc[duplicated, "item_id"].tolist()
        info.setdefault("duplicates_dropped", {})[split] = len(ids)
        warn(
            info,
            f"{source}: {len(ids)} duplicate item_id row(s) dropped, first occurrence kept "
            f"(item_ids {examples(ids)})",
        )
        raw = raw.loc[~duplicated]
    return raw


def stat_images(paths: Iterable[str]) -> dict[str, tuple[int, int] | None]:
    """``{path: (size, mtime_ns)}`` of each image file, ``None`` where it is missing (one stat each)."""
    out: dict[str, tuple[int, int] | None] = {}
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            out[path] = None
            continue
        out[path] = (stat.st_size, stat.st_mtime_ns) if S_ISREG(stat.st_mode) else None
    return out


def image_files_identity(stats: dict[str, tuple[int, int] | None]) -> str:
    """A digest of every image file's path, size and mtime (what an edited image changes)."""
    digest = hashlib.sha256()
    for path in sorted(stats):
        identity = stats[path]
        digest.update(
            f"{path}\0{identity[0]}\0{identity[1]}\n".encode() if identity else f"{path}\0-\n".encode()
        )
    return digest.hexdigest()[:16]


def check_images_exist(
    frame: pd.DataFrame,
    split: str,
    policy: str,
    info: dict[str, Any],
    stats: dict[str, tuple[int, int] | None] | None = None,
) -> pd.DataFrame:
    """Drop rows whose image file is missing (``skip``, with a warning) or raise (``fail``)."""
    if len(frame) == 0:
        return frame
    if stats is None:
        stats = stat_images(pd.unique(frame["image_path"]))
    present = frame["image_path"].map(lambda path: stats[path] is not None).astype(bool)
    if present.all():
        return frame
    missing = frame.loc[~present]
    if policy == "fail":
        first = missing.iloc[0]
        raise DataError(
            f"{split}: image file {first['image_path']} of item_id {first['item_id']} does not exist "
            f"({len(missing)} missing in this split); use on_bad_image='skip' to drop such rows"
        )
    info.setdefault("missing_images", {})[split] = len(missing)
    warn(
        info,
        f"{split}: {len(missing)} row(s) skipped because the image file is missing "
        f"(item_ids {examples(missing['item_id'])})",
    )
    return frame.loc[present]


def file_identity(paths: Iterable[Path]) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        stat = Path(path).stat()
        out.append({"path": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return out


def note_replacements(count: int, source: Path, frame: pd.DataFrame, info: dict[str, Any]) -> None:
    """Warn about rows whose undecodable bytes were replaced by U+FFFD."""
    if count:
        bad = frame.loc[
            frame["text"].str.contains(REPLACEMENT_CHAR, regex=False, na=False)
            | frame["item_id"].astype(str).str.contains(REPLACEMENT_CHAR, regex=False, na=False),
            "row",
        ].tolist()
        info.setdefault("non_utf8_rows", {})[str(source)] = count
        warn(
            info,
            f"{source}: {count} row(s) contain bytes that are not valid UTF-8; they were replaced by "
            f"U+FFFD (CSV lines {examples(bad)})",
        )
