"""The token-feature cache on disk: layout, key, journal and manifest, integrity checks, opening.

Pure numpy/pandas (no torch): what an entry is and how it is checked and read. The encode loop that
fills entries is :mod:`fusionzoo.encoders.cache`.

Each distinct input is stored once. One entry, ``<cache_dir>/<dataset>-<split>-<key>/``::

    image_tokens.f16   (Ui, Li, Ei) float16, raw, row-major: the distinct readable images   chunked
    text_tokens.f16    (T, Et) float16, raw: the distinct texts' tokens back to back         chunked
    text_lengths.i64   (Ut,) int64 tokens per distinct text (offsets = cumsum)               chunked
    rows.i64           (N,) int64 row of the split frame each sample came from (bad images dropped)
    image_index.i64    (N,) int64 sample → distinct image
    text_index.i64     (N,) int64 sample → distinct text
    labels.npy, meta.parquet
    manifest.json      key payload, counts and shapes, per-chunk byte ranges + sha256, size + sha256
                       of every whole file (rows, indices, labels, meta)

Distinct images are the split's image files in order of first appearance, identified by normalised
path, size and mtime; distinct texts are exact string matches among the rows that are kept, in order
of first appearance (:mod:`fusionzoo.encoders.cache_plan`). Both orders are a pure function
of the split frame, so an interrupted encode resumes into the same layout.

``key`` is a hash of everything the features depend on: the split's fingerprint (dataset files and
every image's size and mtime, loader options, limit/filters and the split's item ids), the encoders'
identities (name, weights identity, preprocessing, max_length, token selection), dtype, the bad-image
policy and :data:`FORMAT_VERSION`.

An entry is built in ``<entry>.partial/`` in two phases, images then texts, each in chunks; each
chunk's bytes are appended and fsynced, then ``journal.json`` (per-chunk byte ranges and sha256, the
bad images and truncated texts found) is replaced atomically. A killed run leaves a partial entry
whose journal names the complete chunks; the next run verifies them, truncates anything after the last
good chunk and continues from there. Then the whole files and the manifest are written and the folder
is renamed to its final name (atomic).

Opening an entry (:func:`open_entry`) checks **every file** against the manifest: the sizes of all
files always (cheap), the sha256 of each chunk and of each whole file when hashing (``verify`` ``full``,
or ``auto`` for entries up to 8 GiB); the manifest's key must match the entry's name and its payload,
the shapes must agree with the file sizes and the indices must point at stored items.
:func:`check_against_split` checks an entry against the dataset it is reused for (cheap, always): every
label in ``0..C-1`` and equal to the dataset's label of its row, the item ids equal to the dataset's.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.data.base import DatasetSplits, fingerprint_of
from fusionzoo.encoders.cache_plan import distinct_texts, kept_after_images
from fusionzoo.encoders.errors import EncoderError
from fusionzoo.encoders.features import FeatureSplit
from fusionzoo.io import atomic_write, human_bytes, replace_directory

__all__ = [
    "CACHE_ENV",
    "FILES",
    "FORMAT_VERSION",
    "WHOLE_FILES",
    "CacheIntegrityError",
    "append_chunk",
    "check_against_split",
    "chunk_problems",
    "default_cache_dir",
    "entry_key",
    "file_records",
    "finish_entry",
    "open_entry",
    "read_journal",
    "truncate_to_journal",
    "write_journal",
]

FORMAT_VERSION = 2  # 2: distinct images and texts stored once, with per-row indices
CACHE_ENV = "FUSIONZOO_CACHE"
FULL_VERIFY_LIMIT = 8 << 30  # entries up to 8 GiB are fully hashed on open; larger: sizes unless asked
FILES = ("image_tokens.f16", "text_tokens.f16", "text_lengths.i64")  # chunked, per-chunk sha256
WHOLE_FILES = ("rows.i64", "image_index.i64", "text_index.i64", "labels.npy", "meta.parquet")
META_COLUMNS = ("item_id", "geo", "label_source", "is_human", "label")
JOURNAL = "journal.json"
MANIFEST = "manifest.json"


class CacheIntegrityError(EncoderError):
    """A cache entry whose files do not match its manifest."""


def default_cache_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``$FUSIONZOO_CACHE``, else ``<data dir>/features`` (data dir: ``--data-dir``, ``$FUSIONZOO_DATA``,
    or the user cache directory)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser().resolve()
    if data_dir is None or str(data_dir) == "":
        if os.environ.get("FUSIONZOO_DATA"):
            data_dir = os.environ["FUSIONZOO_DATA"]
        else:
            import platformdirs

            data_dir = platformdirs.user_cache_dir("fusionzoo", appauthor=False)
    return Path(data_dir).expanduser().resolve() / "features"


def entry_key(
    splits: DatasetSplits, split: str, image_encoder: Any, text_encoder: Any, on_bad_image: str
) -> tuple[str, dict[str, Any]]:
    """``(key, payload)``: the cache key of one split's features and what it was computed from.

    The encoders only need ``identity()`` (no model is run)."""
    payload = {
        "format": FORMAT_VERSION,
        "dataset": splits.name,
        "split": split,
        "split_fingerprint": splits.split_fingerprint(split),
        "rows": len(splits.split(split)),
        "image": image_encoder.identity(),
        "text": text_encoder.identity(),
        "dtype": "float16",
        "on_bad_image": on_bad_image,
        "distinct": {"image": "normalised path + size + mtime", "text": "exact string"},
    }
    return fingerprint_of(payload), payload


# ---------------------------------------------------------------------------------- journal + chunks


def _sha(path: Path, start: int, length: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            block = handle.read(min(remaining, 1 << 22))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
    return digest.hexdigest()


def read_journal(partial: Path, key: str) -> dict[str, Any] | None:
    """The journal of a partial entry for ``key`` (None when missing, unreadable or for another key)."""
    try:
        journal = json.loads((partial / JOURNAL).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(journal, dict) or journal.get("key") != key or journal.get("format") != FORMAT_VERSION:
        return None
    return journal


def write_journal(partial: Path, journal: dict[str, Any]) -> None:
    atomic_write(partial / JOURNAL, json.dumps(journal, sort_keys=True))


def chunk_problems(folder: Path, chunks: list[dict[str, Any]], hashes: bool) -> list[tuple[int, str]]:
    """(chunk index, what is wrong) for each chunk whose bytes do not match the journal/manifest."""
    problems = []
    sizes = {name: (folder / name).stat().st_size if (folder / name).exists() else -1 for name in FILES}
    for chunk in chunks:
        for name, (start, length, digest) in chunk["files"].items():
            if sizes.get(name, -1) < start + length:
                problems.append((chunk["index"], f"{name} is truncated"))
                break
            if hashes and _sha(folder / name, start, length) != digest:
                problems.append((chunk["index"], f"{name} bytes {start}..{start + length} fail their sha256"))
                break
    return problems


def truncate_to_journal(partial: Path, journal: dict[str, Any]) -> dict[str, int]:
    """Cut every chunked file back to the end of its last complete chunk; returns those ends."""
    ends = dict.fromkeys(FILES, 0)
    for chunk in journal["chunks"]:
        for name, (start, length, _) in chunk["files"].items():
            ends[name] = max(ends[name], start + length)
    for name in FILES:
        with open(partial / name, "a+b") as handle:
            handle.truncate(ends[name])
    return ends


def append_chunk(
    partial: Path,
    journal: dict[str, Any],
    record: dict[str, Any],
    arrays: dict[str, np.ndarray],
    handles: dict[str, Any],
    ends: dict[str, int],
) -> None:
    """Append one chunk's arrays to their files (fsynced), then record it in the journal atomically.

    ``record`` carries the chunk's ``phase``, ``index``, ``start``/``stop`` (distinct items) and what
    the phase found (``bad`` images, ``truncated`` texts); the byte range and sha256 of each file are
    added here."""
    record = {**record, "files": {}}
    for name, array in arrays.items():
        data = np.ascontiguousarray(array).tobytes()
        handles[name].write(data)
        handles[name].flush()
        os.fsync(handles[name].fileno())
        record["files"][name] = [ends[name], len(data), hashlib.sha256(data).hexdigest()]
        ends[name] += len(data)
    journal["chunks"].append(record)
    write_journal(partial, journal)


# ---------------------------------------------------------------------------------- finishing


def file_records(folder: Path, names: tuple[str, ...] = WHOLE_FILES) -> dict[str, dict[str, Any]]:
    """``{name: {"bytes", "sha256"}}`` of whole files of an entry (what the manifest records)."""
    records = {}
    for name in names:
        path = folder / name
        size = path.stat().st_size
        records[name] = {"bytes": size, "sha256": _sha(path, 0, size)}
    return records


def _write_array(path: Path, array: np.ndarray) -> None:
    atomic_write(path, np.ascontiguousarray(array, dtype=np.int64).tobytes())


def finish_entry(
    frame: pd.DataFrame,
    partial: Path,
    final: Path,
    journal: dict[str, Any],
    *,
    image_of_row: np.ndarray,
    image_shape: list[int],
    text_dim: int,
) -> dict[str, Any]:
    """Write the whole files and the manifest of a partial entry whose chunks are all in, then rename
    it to ``final``. Returns the manifest."""
    chunks = journal["chunks"]
    bad = {int(i) for c in chunks if c["phase"] == "image" for i in c.get("bad", [])}
    rows = kept_after_images(image_of_row, bad)
    good = np.ones(int(journal["images"]), dtype=bool)
    good[list(bad)] = False
    stored = np.cumsum(good) - 1  # distinct image → its row in image_tokens.f16 (bad ones are not stored)
    image_index = stored[image_of_row[rows]] if len(rows) else np.zeros(0, np.int64)
    _, text_index = distinct_texts(frame["text"].iloc[rows])
    truncated = {int(i) for c in chunks if c["phase"] == "text" for i in c.get("truncated", [])}
    kept = frame.iloc[rows].reset_index(drop=True)
    _write_array(partial / "rows.i64", rows)
    _write_array(partial / "image_index.i64", image_index)
    _write_array(partial / "text_index.i64", text_index)
    atomic_write(
        partial / "labels.npy", lambda handle: np.save(handle, kept["label"].to_numpy(dtype=np.int64))
    )
    meta = kept[[c for c in META_COLUMNS if c in kept.columns]].copy()
    meta["item_id"] = meta["item_id"].astype(str)
    atomic_write(partial / "meta.parquet", lambda handle: meta.to_parquet(handle, index=False))
    lengths_bytes = (partial / "text_lengths.i64").stat().st_size
    manifest = {
        "key": journal["key"],
        "payload": journal["payload"],
        "n": len(rows),
        "n_images": int(good.sum()),
        "n_texts": lengths_bytes // 8,
        "image_shape": journal.get("image_shape", image_shape),
        "text_dim": text_dim,
        "text_total": (partial / "text_tokens.f16").stat().st_size // (2 * text_dim),
        "chunks": chunks,
        "bytes": {name: (partial / name).stat().st_size for name in FILES},
        "files": file_records(partial),
        "bad_items": frame["item_id"].astype(str).drop(frame.index[rows]).tolist(),
        "bad_images": len(bad),
        "truncated_texts": int(np.isin(text_index, list(truncated)).sum()) if truncated else 0,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write(partial / MANIFEST, json.dumps(manifest, sort_keys=True))
    (partial / JOURNAL).unlink(missing_ok=True)
    replace_directory(partial, final, sync=False)  # every file in it is fsynced already
    return manifest


# ---------------------------------------------------------------------------------- reading


def _corrupt(folder: Path, what: str) -> CacheIntegrityError:
    return CacheIntegrityError(f"cache entry {folder.name}: {what}")


def open_entry(folder: Path, verify: str = "auto", console: Any = None) -> FeatureSplit:
    """Open a complete entry memory-mapped, after checking every file against its manifest.

    ``verify``: ``full`` hashes every chunk and file, ``size`` checks sizes (and shapes) only, ``auto``
    hashes entries up to 8 GiB. Raises :class:`CacheIntegrityError` when the entry does not match.
    """
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise _corrupt(folder, f"unreadable manifest ({exc})") from None
    key = manifest.get("key")
    if not folder.name.endswith(f"-{key}") or fingerprint_of(manifest.get("payload", {})) != key:
        raise _corrupt(folder, f"the manifest's key {key!r} does not match the entry or its payload")
    records = manifest.get("files")
    if not isinstance(records, dict) or set(records) != set(WHOLE_FILES):
        raise _corrupt(
            folder, f"the manifest has no integrity record for {', '.join(WHOLE_FILES)} (an older format)"
        )
    total = sum(manifest["bytes"].values()) + sum(r["bytes"] for r in records.values())
    hashes = verify == "full" or (verify == "auto" and total <= FULL_VERIFY_LIMIT)
    if not hashes and console is not None:
        console.print(
            f"\\[cache] {folder.name}: {human_bytes(total)}; checked file sizes only "
            f"(use --verify-cache full to hash every chunk)"
        )
    expected_sizes = {**manifest["bytes"], **{name: r["bytes"] for name, r in records.items()}}
    for name, size in expected_sizes.items():
        actual = (folder / name).stat().st_size if (folder / name).exists() else -1
        if actual != size:
            raise _corrupt(folder, f"{name} has {actual} bytes, the manifest says {size}")
    n, n_images, n_texts = manifest["n"], manifest["n_images"], manifest["n_texts"]
    li, ei, et = manifest["image_shape"][0], manifest["image_shape"][1], manifest["text_dim"]
    t = manifest["text_total"]
    shapes = {
        "image_tokens.f16": n_images * li * ei * 2,
        "text_tokens.f16": t * et * 2,
        "text_lengths.i64": n_texts * 8,
        "rows.i64": n * 8,
        "image_index.i64": n * 8,
        "text_index.i64": n * 8,
    }
    for name, size in shapes.items():
        if expected_sizes[name] != size:
            raise _corrupt(
                folder, f"{name} has {expected_sizes[name]} bytes, the shapes in the manifest need {size}"
            )
    problems = chunk_problems(folder, manifest["chunks"], hashes)
    if problems:
        index, what = problems[0]
        raise _corrupt(folder, f"chunk {index}: {what}")
    if hashes:
        for name, record in records.items():
            if _sha(folder / name, 0, record["bytes"]) != record["sha256"]:
                raise _corrupt(folder, f"{name} fails its sha256")
    lengths = np.fromfile(folder / "text_lengths.i64", dtype=np.int64)
    if len(lengths) and (lengths.min() < 0 or int(lengths.sum()) != t):
        raise _corrupt(folder, f"text_lengths.i64 does not add up to the {t} stored text tokens")
    indices = {}
    for name, count in (("image_index.i64", n_images), ("text_index.i64", n_texts)):
        index = np.fromfile(folder / name, dtype=np.int64)
        if len(index) and (index.min() < 0 or index.max() >= count):
            raise _corrupt(folder, f"{name} points outside the {count} stored items")
        indices[name] = index
    labels = np.load(folder / "labels.npy", allow_pickle=False)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise _corrupt(folder, f"labels.npy holds {labels.dtype} {labels.shape}, expected int64 ({n},)")
    meta = pd.read_parquet(folder / "meta.parquet")
    info = {
        "cache_path": str(folder),
        "key": manifest["key"],
        "bad_items": manifest["bad_items"],
        "truncated_texts": manifest["truncated_texts"],
        "bytes": total,
        "distinct_images": n_images,
        "distinct_texts": n_texts,
    }
    sources = {
        name: str(folder / f"{name}.f16")
        for name, count in (("image_tokens", n_images), ("text_tokens", t))
        if count
    }
    return FeatureSplit(
        image_tokens=_memmap(folder / "image_tokens.f16", np.float16, (n_images, li, ei)),
        text_tokens=_memmap(folder / "text_tokens.f16", np.float16, (t, et)),
        text_offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        labels=labels,
        meta=meta,
        info=info,
        sources=sources or None,
        image_index=indices["image_index.i64"],
        text_index=indices["text_index.i64"],
    )


def check_against_split(
    features: FeatureSplit, folder: Path, frame: pd.DataFrame, num_classes: int | None
) -> None:
    """Raise :class:`CacheIntegrityError` unless the entry's labels and item ids are the dataset's.

    ``frame``: the split frame the entry was built from (``reset_index(drop=True)``). Cheap (N ints
    and N item ids), so it runs on every reuse, whatever ``verify`` says.
    """
    labels = np.asarray(features.labels)
    if num_classes is not None and len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        raise _corrupt(
            folder,
            f"labels.npy holds label {int(bad[0])} outside 0..{num_classes - 1} (the dataset has "
            f"{num_classes} classes)",
        )
    rows = np.fromfile(folder / "rows.i64", dtype=np.int64)
    if len(rows) != len(labels) or (len(rows) and (rows.min() < 0 or rows.max() >= len(frame))):
        raise _corrupt(folder, "rows.i64 does not index the split's rows")
    expected = frame["label"].to_numpy(dtype=np.int64)[rows]
    if not np.array_equal(labels, expected):
        first = int(np.flatnonzero(labels != expected)[0])
        raise _corrupt(
            folder,
            f"labels.npy does not match the dataset's labels ({int((labels != expected).sum())} rows differ, "
            f"first row {first}: {int(labels[first])} vs {int(expected[first])})",
        )
    ids = frame["item_id"].astype(str).to_numpy()[rows]
    if "item_id" not in features.meta.columns or not np.array_equal(
        features.meta["item_id"].astype(str).to_numpy(), ids
    ):
        raise _corrupt(folder, "meta.parquet's item ids are not the dataset's")


def _memmap(path: Path, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape)
