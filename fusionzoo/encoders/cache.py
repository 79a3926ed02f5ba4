"""The token-feature cache (frozen mode): encode each split once, read it back memory-mapped.

Layout of one entry, ``<cache_dir>/<dataset>-<split>-<key>/``::

    image_tokens.f16   (N, Li, Ei) float16, raw, row-major        appended chunk by chunk
    text_tokens.f16    (T, Et) float16, raw: every text's tokens back to back, no padding
    text_lengths.i64   (N,) int64 tokens per text (offsets = cumsum)
    rows.i64           (N,) int64 row of the split frame each sample came from (bad images dropped)
    labels.npy, meta.parquet, manifest.json (key payload, shapes, per-chunk byte ranges + sha256,
                       size + sha256 of labels.npy and meta.parquet)

``key`` is a hash of everything the features depend on: the split's fingerprint (dataset files,
loader options, limit/filters and the split's item ids), the encoders' identities (name, weights
identity, preprocessing, max_length, token selection), dtype and the bad-image policy.

An entry is built in ``<entry>.partial/``: rows are encoded in chunks; each chunk's bytes are appended
and fsynced, then ``journal.json`` (per-chunk byte ranges and sha256) is replaced atomically
(temp + rename). A killed run leaves a partial entry whose journal names the complete chunks; the next
run verifies them, truncates anything after the last good chunk and continues from there. When every
chunk is written the folder is renamed to its final name (atomic).

Opening an entry checks **every file** against the manifest: the sizes of all files always (cheap),
the sha256 of each token chunk and of ``labels.npy`` / ``meta.parquet`` when hashing (``verify``
``full``, or ``auto`` for entries up to 8 GiB); the manifest's key must match the entry's name and its
payload, and the shapes must agree with the file sizes. :func:`encode_splits` then checks the entry
against the dataset it is reused for (cheap, always): every label in ``0..C-1`` and equal to the
dataset's label of its row, the item ids equal to the dataset's. Any mismatch prints "corrupt cache
entry … deleting and rebuilding it" and the entry is rebuilt — never read.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from fusionzoo.data.base import SPLITS, DatasetSplits, fingerprint_of
from fusionzoo.encoders.errors import EncoderError
from fusionzoo.encoders.features import FeatureSplit
from fusionzoo.encoders.image import ImageEncoder
from fusionzoo.encoders.rows import image_text_dataset
from fusionzoo.encoders.text import TextEncoder, tokenize_texts
from fusionzoo.io import human_bytes

FORMAT_VERSION = 1
CACHE_ENV = "FUSIONZOO_CACHE"
FULL_VERIFY_LIMIT = 8 << 30  # entries up to 8 GiB are fully hashed on open; larger: sizes unless asked
LARGE_CACHE_WARNING = 20 << 30
FILES = ("image_tokens.f16", "text_tokens.f16", "text_lengths.i64", "rows.i64")  # chunked, per-chunk sha256
WHOLE_FILES = ("labels.npy", "meta.parquet")  # written at the end, one sha256 each (manifest["files"])
META_COLUMNS = ("item_id", "geo", "label_source", "is_human", "label")


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
    splits: DatasetSplits,
    split: str,
    image_encoder: ImageEncoder,
    text_encoder: TextEncoder,
    on_bad_image: str,
) -> tuple[str, dict[str, Any]]:
    """``(key, payload)``: the cache key of one split's features and what it was computed from."""
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
    }
    return fingerprint_of(payload), payload


# ---------------------------------------------------------------------------------------------------
# file helpers


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


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        json.dump(payload, handle, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


@contextlib.contextmanager
def _locked(path: Path, console: Any) -> Iterator[None]:
    """An exclusive lock (flock) so that two processes never build the same entry at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            console.print(f"\\[cache] another process is encoding {path.stem}; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _chunk_problems(folder: Path, chunks: list[dict[str, Any]], hashes: bool) -> list[tuple[int, str]]:
    """(chunk index, what is wrong) for each chunk whose bytes do not match the journal/manifest."""
    problems = []
    sizes = {name: (folder / name).stat().st_size if (folder / name).exists() else -1 for name in FILES}
    for chunk in chunks:
        for name in FILES:
            start, length, digest = chunk["files"][name]
            if sizes[name] < start + length:
                problems.append((chunk["index"], f"{name} is truncated"))
                break
            if hashes and _sha(folder / name, start, length) != digest:
                problems.append((chunk["index"], f"{name} bytes {start}..{start + length} fail their sha256"))
                break
    return problems


# ---------------------------------------------------------------------------------------------------
# reading


def file_records(folder: Path, names: tuple[str, ...] = WHOLE_FILES) -> dict[str, dict[str, Any]]:
    """``{name: {"bytes", "sha256"}}`` of whole files of an entry (what the manifest records)."""
    records = {}
    for name in names:
        path = folder / name
        size = path.stat().st_size
        records[name] = {"bytes": size, "sha256": _sha(path, 0, size)}
    return records


def open_entry(folder: Path, verify: str = "auto", console: Any = None) -> FeatureSplit:
    """Open a complete entry memory-mapped, after checking every file against its manifest.

    ``verify``: ``full`` hashes every chunk and file, ``size`` checks sizes (and shapes) only, ``auto``
    hashes entries up to 8 GiB. Raises :class:`CacheIntegrityError` when the entry does not match.
    """
    manifest_path = folder / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise CacheIntegrityError(f"cache entry {folder.name}: unreadable manifest ({exc})") from None
    key = manifest.get("key")
    if not folder.name.endswith(f"-{key}") or fingerprint_of(manifest.get("payload", {})) != key:
        raise CacheIntegrityError(
            f"cache entry {folder.name}: the manifest's key {key!r} does not match the entry or its payload"
        )
    records = manifest.get("files")
    if not isinstance(records, dict) or set(records) != set(WHOLE_FILES):
        raise CacheIntegrityError(
            f"cache entry {folder.name}: the manifest has no integrity record for "
            f"{', '.join(WHOLE_FILES)} (written by an older fusionzoo)"
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
            raise CacheIntegrityError(
                f"cache entry {folder.name}: {name} has {actual} bytes, the manifest says {size}"
            )
    n = manifest["n"]
    li, ei, et = manifest["image_shape"][0], manifest["image_shape"][1], manifest["text_dim"]
    t = manifest["text_total"]
    shapes = {
        "image_tokens.f16": n * li * ei * 2,
        "text_tokens.f16": t * et * 2,
        "text_lengths.i64": n * 8,
        "rows.i64": n * 8,
    }
    for name, size in shapes.items():
        if manifest["bytes"][name] != size:
            raise CacheIntegrityError(
                f"cache entry {folder.name}: {name} has {manifest['bytes'][name]} bytes, the shapes in the "
                f"manifest need {size}"
            )
    problems = _chunk_problems(folder, manifest["chunks"], hashes)
    if problems:
        index, what = problems[0]
        raise CacheIntegrityError(f"cache entry {folder.name}: chunk {index}: {what}")
    if hashes:
        for name, record in records.items():
            if _sha(folder / name, 0, record["bytes"]) != record["sha256"]:
                raise CacheIntegrityError(f"cache entry {folder.name}: {name} fails its sha256")
    image = _memmap(folder / "image_tokens.f16", np.float16, (n, li, ei))
    text = _memmap(folder / "text_tokens.f16", np.float16, (t, et))
    lengths = np.fromfile(folder / "text_lengths.i64", dtype=np.int64) if n else np.zeros(0, np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    labels = np.load(folder / "labels.npy", allow_pickle=False)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise CacheIntegrityError(
            f"cache entry {folder.name}: labels.npy holds {labels.dtype} {labels.shape}, expected int64 ({n},)"
        )
    meta = pd.read_parquet(folder / "meta.parquet")
    info = {"cache_path": str(folder), "key": manifest["key"], "bad_items": manifest["bad_items"]}
    info["truncated_texts"] = manifest["truncated_texts"]
    info["bytes"] = total
    sources = {
        "image_tokens": str(folder / "image_tokens.f16"),
        "text_tokens": str(folder / "text_tokens.f16"),
    }
    return FeatureSplit(image, text, offsets, labels, meta, info=info, sources=sources if n else None)


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
        raise CacheIntegrityError(
            f"cache entry {folder.name}: labels.npy holds label {int(bad[0])} outside 0..{num_classes - 1} "
            f"(the dataset has {num_classes} classes)"
        )
    rows = np.fromfile(folder / "rows.i64", dtype=np.int64) if len(labels) else np.zeros(0, np.int64)
    if len(rows) != len(labels) or (len(rows) and (rows.min() < 0 or rows.max() >= len(frame))):
        raise CacheIntegrityError(f"cache entry {folder.name}: rows.i64 does not index the split's rows")
    expected = frame["label"].to_numpy(dtype=np.int64)[rows]
    if not np.array_equal(labels, expected):
        first = int(np.flatnonzero(labels != expected)[0])
        raise CacheIntegrityError(
            f"cache entry {folder.name}: labels.npy does not match the dataset's labels "
            f"({int((labels != expected).sum())} rows differ, first row {first}: {int(labels[first])} vs "
            f"{int(expected[first])})"
        )
    ids = frame["item_id"].astype(str).to_numpy()[rows]
    if "item_id" not in features.meta.columns or not np.array_equal(
        features.meta["item_id"].astype(str).to_numpy(), ids
    ):
        raise CacheIntegrityError(f"cache entry {folder.name}: meta.parquet's item ids are not the dataset's")


def _memmap(path: Path, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape)


# ---------------------------------------------------------------------------------------------------
# writing


@dataclass
class _BatchOut:
    rows: np.ndarray
    image: np.ndarray
    text: np.ndarray
    lengths: np.ndarray
    truncated: int


class _Collate:
    """Collate raw items: stack pixels of readable images, tokenize the texts (inside the workers)."""

    def __init__(self, text_encoder: TextEncoder) -> None:
        # only the tokenizer travels to the workers, never the model
        self.tokenizer = text_encoder.tokenizer
        self.max_length = text_encoder.max_length

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        ok = [bool(item["ok"]) and item["image"] is not None for item in items]
        good = [item for item, flag in zip(items, ok, strict=True) if flag]
        pixels = torch.stack([item["image"] for item in good]) if good else None
        tokens = (
            tokenize_texts(self.tokenizer, self.max_length, [item["text"] for item in good]) if good else None
        )
        return {
            "index": [int(item["index"]) for item in items],
            "ok": ok,
            "pixels": pixels,
            "tokens": tokens,
        }


class _ChunkBatches(torch.utils.data.Sampler):
    """Batches of row indices that never straddle a chunk boundary (resume reproduces the batches)."""

    def __init__(self, start: int, stop: int, chunk_rows: int, batch_size: int) -> None:
        self.batches = []
        for chunk_start in range(start, stop, chunk_rows):
            chunk_stop = min(stop, chunk_start + chunk_rows)
            for batch_start in range(chunk_start, chunk_stop, batch_size):
                self.batches.append(list(range(batch_start, min(chunk_stop, batch_start + batch_size))))

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def estimate_bytes(
    frame: pd.DataFrame, image_encoder: ImageEncoder, text_encoder: TextEncoder, sample: int = 256
) -> dict[str, float]:
    """Expected cache size of a split: image and text tokens (text length from a sample of texts)."""
    n = len(frame)
    image = n * image_encoder.num_tokens * image_encoder.out_dim * 2
    texts = frame["text"].fillna("").astype(str)
    if n:
        picked = texts.sample(min(sample, n), random_state=0).tolist() if n > sample else texts.tolist()
        lengths = text_encoder.tokenize(picked).lengths
        mean_length = 1.0 if text_encoder.token_selection != "all" else float(np.mean(lengths))
    else:
        mean_length = 0.0
    text = n * mean_length * text_encoder.out_dim * 2
    return {"image": float(image), "text": float(text), "mean_text_tokens": mean_length, "rows": n}


def _size_advice(total: float, image_encoder: ImageEncoder, text_encoder: TextEncoder) -> str:
    return (
        f"the feature cache will take about {human_bytes(total)}. To make it smaller: "
        f"--text-max-length N (now {text_encoder.max_length}), --image-tokens cls|mean|N "
        f"(now {image_encoder.token_selection}, {image_encoder.num_tokens} tokens per image), "
        f"or a pooled-only cache with --image-tokens mean --text-tokens mean."
    )


class _Progress:
    """rich progress with items/s, or nothing."""

    def __init__(self, enabled: bool, console: Any) -> None:
        self.enabled = enabled
        self.console = console
        self.progress = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                ProgressColumn,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.text import Text

            class ItemsPerSecond(ProgressColumn):
                def render(self, task: Any) -> Text:
                    speed = task.finished_speed or task.speed
                    if not speed and task.elapsed:
                        speed = task.completed / task.elapsed if task.completed else None
                    return Text(
                        f"{speed:,.0f} items/s" if speed else "- items/s", style="progress.data.speed"
                    )

            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                ItemsPerSecond(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def add(self, description: str, total: int, completed: int) -> Any:
        if self.progress is None:
            return None
        return self.progress.add_task(description, total=total, completed=completed)

    def advance(self, task: Any, count: int) -> None:
        if self.progress is not None and task is not None:
            self.progress.advance(task, count)


@contextlib.contextmanager
def _cpu_threads_beside_workers(device: torch.device, workers: int) -> Iterator[None]:
    """On CPU, leave one core per loader worker: oversubscribed OpenMP threads stall each other."""
    before = torch.get_num_threads()
    wanted = max(1, _cpu_count() - workers)
    if device.type == "cpu" and workers and before > wanted:
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _auto_workers(rows: int, device: torch.device) -> int:
    """Loader workers for decoding. On a CPU with <= 2 cores a worker would take a core from the
    encoders (measured on 2 cores: pipeline/bare 0.53 with one worker, 0.68 decoding in-process)."""
    cpus = _cpu_count()
    if rows < 512 or cpus < 2 or (device.type == "cpu" and cpus <= 2):
        return 0
    return min(4, max(1, cpus // 2))


def _encode_entry(
    frame: pd.DataFrame,
    partial: Path,
    key: str,
    payload: dict[str, Any],
    image_encoder: ImageEncoder,
    text_encoder: TextEncoder,
    *,
    batch_size: int,
    chunk_rows: int,
    device: torch.device,
    num_workers: int | None,
    on_bad_image: str,
    console: Any,
    progress: _Progress,
    label: str,
    on_chunk: Callable[[str, int], None] | None,
) -> dict[str, Any]:
    """Encode (or continue encoding) one split into ``partial``; returns the journal."""
    partial.mkdir(parents=True, exist_ok=True)
    journal_path = partial / "journal.json"
    journal: dict[str, Any] | None = None
    if journal_path.exists():
        try:
            journal = json.loads(journal_path.read_text())
        except ValueError:
            journal = None
        if journal is not None and journal.get("key") != key:
            journal = None
    if journal is not None:
        problems = _chunk_problems(partial, journal["chunks"], hashes=True)
        if problems:
            first_bad = problems[0][0]
            console.print(
                f"\\[cache] {label}: partial entry chunk {first_bad} is damaged ({problems[0][1]}); "
                f"resuming from the chunk before it"
            )
            journal["chunks"] = [c for c in journal["chunks"] if c["index"] < first_bad]
        chunk_rows = int(journal["chunk_rows"])
    if journal is None:
        for name in FILES:
            (partial / name).unlink(missing_ok=True)
        journal = {
            "key": key,
            "payload": payload,
            "chunk_rows": chunk_rows,
            "batch_size": batch_size,
            "chunks": [],
        }
    # cut every file back to the end of the last complete chunk
    ends = {name: 0 for name in FILES}
    for chunk in journal["chunks"]:
        for name in FILES:
            start, length, _ = chunk["files"][name]
            ends[name] = max(ends[name], start + length)
    for name in FILES:
        with open(partial / name, "a+b") as handle:
            handle.truncate(ends[name])
    _write_json_atomic(journal_path, journal)

    n = len(frame)
    done_chunks = len(journal["chunks"])
    start_row = min(n, done_chunks * chunk_rows)
    if done_chunks:
        console.print(
            f"\\[cache] {label}: resuming an interrupted encode at row {start_row:,} of {n:,} "
            f"({done_chunks} complete chunks kept)"
        )
    task = progress.add(f"encode {label}", n, start_row)
    if start_row >= n:
        return journal

    dataset = image_text_dataset(frame, image_encoder.transform)
    workers = _auto_workers(n - start_row, device) if num_workers is None else num_workers
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=_ChunkBatches(start_row, n, chunk_rows, batch_size),
        num_workers=workers,
        collate_fn=_Collate(text_encoder),
        pin_memory=device.type == "cuda",
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )
    with contextlib.ExitStack() as stack:
        stack.enter_context(_cpu_threads_beside_workers(device, workers))
        handles = {name: stack.enter_context(open(partial / name, "r+b")) for name in FILES}
        for handle_name, handle in handles.items():
            handle.seek(ends[handle_name])
        pending: list[_BatchOut] = []
        chunk_index = done_chunks
        chunk_end = min(n, (chunk_index + 1) * chunk_rows)
        for batch in loader:
            out = _encode_batch(batch, image_encoder, text_encoder, device)
            pending.append(out)
            progress.advance(task, len(batch["index"]))
            if max(batch["index"]) + 1 >= chunk_end:
                _commit_chunk(partial, journal, chunk_index, chunk_end, pending, handles, ends)
                if on_chunk is not None:
                    on_chunk(label, chunk_index)
                pending = []
                chunk_index += 1
                chunk_end = min(n, (chunk_index + 1) * chunk_rows)
    return journal


def _encode_batch(
    batch: dict[str, Any], image_encoder: ImageEncoder, text_encoder: TextEncoder, device: torch.device
) -> _BatchOut:
    rows = np.asarray([i for i, ok in zip(batch["index"], batch["ok"], strict=True) if ok], dtype=np.int64)
    if batch["pixels"] is None:
        empty = np.zeros((0, image_encoder.num_tokens, image_encoder.out_dim), np.float16)
        return _BatchOut(rows, empty, np.zeros((0, text_encoder.out_dim), np.float16), rows * 0, 0)
    with torch.inference_mode():
        pixels = batch["pixels"].to(device, non_blocking=True)
        image = image_encoder(pixels)
        tokens = batch["tokens"].to(device)
        text, mask = text_encoder(tokens.input_ids, tokens.attention_mask)
    image_np = _to_f16(image)
    text_np = _to_f16(text)
    mask_np = mask.cpu().numpy()
    lengths = mask_np.sum(1).astype(np.int64)
    flat = text_np[mask_np]  # (Σ lengths, Et), row-major: each text's real tokens in order
    return _BatchOut(rows, image_np, flat, lengths, tokens.truncated)


def _to_f16(tensor: torch.Tensor) -> np.ndarray:
    limit = float(np.finfo(np.float16).max)
    return tensor.float().clamp(-limit, limit).to(torch.float16).cpu().numpy()


def _commit_chunk(
    partial: Path,
    journal: dict[str, Any],
    index: int,
    row_end: int,
    pending: list[_BatchOut],
    handles: dict[str, Any],
    ends: dict[str, int],
) -> None:
    arrays = {
        "image_tokens.f16": np.concatenate([p.image for p in pending]),
        "text_tokens.f16": np.concatenate([p.text for p in pending]),
        "text_lengths.i64": np.concatenate([p.lengths for p in pending]).astype(np.int64),
        "rows.i64": np.concatenate([p.rows for p in pending]).astype(np.int64),
    }
    entry: dict[str, Any] = {"index": index, "row_end": row_end, "files": {}}
    for name, array in arrays.items():
        data = np.ascontiguousarray(array).tobytes()
        handles[name].write(data)
        handles[name].flush()
        os.fsync(handles[name].fileno())
        entry["files"][name] = [ends[name], len(data), hashlib.sha256(data).hexdigest()]
        ends[name] += len(data)
    entry["kept"] = int(len(arrays["rows.i64"]))
    entry["truncated"] = int(sum(p.truncated for p in pending))
    if len(arrays["image_tokens.f16"]):
        journal["image_shape"] = list(arrays["image_tokens.f16"].shape[1:])
    journal["chunks"].append(entry)
    _write_json_atomic(partial / "journal.json", journal)


def _finish_entry(
    frame: pd.DataFrame,
    partial: Path,
    final: Path,
    journal: dict[str, Any],
    image_encoder: ImageEncoder,
    text_encoder: TextEncoder,
) -> dict[str, Any]:
    rows = np.fromfile(partial / "rows.i64", dtype=np.int64)
    kept = frame.iloc[rows].reset_index(drop=True)
    bad = frame.drop(frame.index[rows]) if len(rows) < len(frame) else frame.iloc[:0]
    labels = kept["label"].to_numpy(dtype=np.int64)
    np.save(partial / "labels.npy", labels)
    meta = kept[[c for c in META_COLUMNS if c in kept.columns]].copy()
    meta["item_id"] = meta["item_id"].astype(str)
    meta.to_parquet(partial / "meta.parquet", index=False)
    _fsync_file(partial / "labels.npy")
    _fsync_file(partial / "meta.parquet")
    manifest = {
        "key": journal["key"],
        "payload": journal["payload"],
        "n": int(len(rows)),
        "image_shape": journal.get("image_shape", [image_encoder.num_tokens, image_encoder.out_dim]),
        "text_dim": text_encoder.out_dim,
        "text_total": int((partial / "text_tokens.f16").stat().st_size // (2 * text_encoder.out_dim)),
        "chunks": journal["chunks"],
        "bytes": {name: (partial / name).stat().st_size for name in FILES},
        "files": file_records(partial),
        "bad_items": bad["item_id"].astype(str).tolist(),
        "truncated_texts": int(sum(c["truncated"] for c in journal["chunks"])),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _write_json_atomic(partial / "manifest.json", manifest)
    (partial / "journal.json").unlink(missing_ok=True)
    _fsync_dir(partial)
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)
    _fsync_dir(final.parent)
    return manifest


def encode_splits(
    splits: DatasetSplits,
    image_encoder: ImageEncoder,
    text_encoder: TextEncoder,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    split_names: tuple[str, ...] | list[str] = SPLITS,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    num_workers: int | None = None,
    chunk_rows: int = 2048,
    on_bad_image: str = "skip",
    verify: str = "auto",
    progress: bool = True,
    console: Any = None,
    on_chunk: Callable[[str, int], None] | None = None,
    encode_entry: Callable[..., dict[str, Any]] | None = None,
) -> dict[str, FeatureSplit]:
    """Token features of each split, from the cache when an identical entry exists, else encoded now.

    Each returned :class:`FeatureSplit` is memory-mapped; its ``info`` says whether it was ``reused``,
    ``resumed`` or encoded, where it lives, the dropped bad-image item ids and the truncated texts.
    ``on_bad_image``: ``skip`` drops unreadable images (counted, first item ids warned), ``fail`` raises.
    ``encode_entry``: what fills an entry's ``.partial`` folder (default: encode here, chunk by chunk;
    :class:`fusionzoo.encoders.sharded.ShardedEncoder` spreads row ranges over workers).
    """
    from rich.console import Console

    if on_bad_image not in ("skip", "fail"):
        raise EncoderError(f"on_bad_image={on_bad_image!r}: expected 'skip' or 'fail'")
    if verify not in ("auto", "full", "size"):
        raise EncoderError(f"verify={verify!r}: expected auto, full or size")
    console = console or Console(stderr=True, soft_wrap=True)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    try:
        device = torch.device(device)
    except RuntimeError as exc:
        raise EncoderError(
            f"device {device!r} is not a torch device ({exc}); use cpu, cuda, cuda:1, mps"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EncoderError(f"device {device} requested but no CUDA device is visible; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise EncoderError(f"device {device} requested but MPS is not available; use --device cpu")
    image_encoder.to(device).eval()
    text_encoder.to(device).eval()
    batch_size = max(1, int(batch_size))
    chunk_rows = max(batch_size, (max(1, int(chunk_rows)) // batch_size) * batch_size)

    plans = []
    for split in split_names:
        key, payload = entry_key(splits, split, image_encoder, text_encoder, on_bad_image)
        final = root / f"{splits.name}-{split}-{key}"
        plans.append((split, key, payload, final))

    results: dict[str, FeatureSplit] = {}
    todo = []
    frames = {split: splits.split(split).reset_index(drop=True) for split in split_names}
    for split, key, payload, final in plans:
        features = _try_open(
            final, verify, console, split, frame=frames[split], num_classes=splits.num_classes
        )
        if features is not None:
            features.info.update(reused=True, resumed=False)
            console.print(
                f"\\[cache] {split}: reusing cached features ({len(features):,} rows, "
                f"{human_bytes(features.info['bytes'])}) from {final}"
            )
            results[split] = features
        else:
            todo.append((split, key, payload, final))

    if todo:
        estimates = {
            split: estimate_bytes(splits.split(split), image_encoder, text_encoder) for split, *_ in todo
        }
        total = sum(e["image"] + e["text"] for e in estimates.values())
        for split, estimate in estimates.items():
            console.print(
                f"\\[cache] {split}: encoding {estimate['rows']:,} rows → about "
                f"{human_bytes(estimate['image'] + estimate['text'])} (image {human_bytes(estimate['image'])}, "
                f"text {human_bytes(estimate['text'])}, ~{estimate['mean_text_tokens']:.0f} tokens/text)"
            )
        free = shutil.disk_usage(root).free
        if total > free:
            raise EncoderError(
                f"not enough disk space in {root}: {human_bytes(free)} free; "
                + _size_advice(total, image_encoder, text_encoder)
            )
        if total > LARGE_CACHE_WARNING:
            console.print(
                "\\[cache] [bold yellow]warning[/]: " + _size_advice(total, image_encoder, text_encoder)
            )

    with _Progress(progress, console) as bars:
        for split, key, payload, final in todo:
            frame = frames[split]
            partial = final.with_name(final.name + ".partial")
            with _locked(final.with_name(final.name + ".lock"), console):
                features = _try_open(
                    final, verify, console, split, quiet=True, frame=frame, num_classes=splits.num_classes
                )
                if features is not None:  # another process finished it while we waited
                    features.info.update(reused=True, resumed=False)
                    results[split] = features
                    continue
                resumed = (partial / "journal.json").exists()
                started = time.perf_counter()
                journal = (encode_entry or _encode_entry)(
                    frame,
                    partial,
                    key,
                    payload,
                    image_encoder,
                    text_encoder,
                    batch_size=batch_size,
                    chunk_rows=chunk_rows,
                    device=device,
                    num_workers=num_workers,
                    on_bad_image=on_bad_image,
                    console=console,
                    progress=bars,
                    label=split,
                    on_chunk=on_chunk,
                )
                kept_rows = np.fromfile(partial / "rows.i64", dtype=np.int64)
                if len(kept_rows) < len(frame):
                    bad_ids = frame["item_id"].astype(str).drop(kept_rows).tolist()
                    if on_bad_image == "fail":
                        shutil.rmtree(partial, ignore_errors=True)
                        raise EncoderError(
                            f"{split}: {len(bad_ids)} unreadable image(s), first item_ids: "
                            f"{', '.join(bad_ids[:5])}; fix or remove those files, or use --on-bad-image skip"
                        )
                manifest = _finish_entry(frame, partial, final, journal, image_encoder, text_encoder)
                seconds = time.perf_counter() - started
            features = open_entry(final, "size", None)  # hashed while written
            features.info.update(reused=False, resumed=resumed, seconds=seconds)
            bad = manifest["bad_items"]
            if bad:
                console.print(
                    f"\\[cache] [yellow]warning[/]: {split}: dropped {len(bad)} row(s) with unreadable images, "
                    f"first item_ids: {', '.join(bad[:5])}"
                )
            if manifest["truncated_texts"]:
                console.print(
                    f"\\[cache] {split}: {manifest['truncated_texts']:,} of {len(frame):,} texts were longer than "
                    f"{text_encoder.max_length} tokens and were truncated"
                )
            console.print(
                f"\\[cache] {split}: encoded {len(features):,} rows in {seconds:.1f} s "
                f"({len(frame) / max(seconds, 1e-9):,.0f} items/s) → {final}"
            )
            results[split] = features
    return {split: results[split] for split in split_names}


def _try_open(
    final: Path,
    verify: str,
    console: Any,
    split: str,
    quiet: bool = False,
    *,
    frame: pd.DataFrame | None = None,
    num_classes: int | None = None,
) -> FeatureSplit | None:
    if not (final / "manifest.json").exists():
        if final.exists():
            console.print(f"\\[cache] {split}: {final.name} has no manifest (incomplete); rebuilding it")
            shutil.rmtree(final, ignore_errors=True)
        return None
    try:
        features = open_entry(final, verify, None if quiet else console)
        if frame is not None:
            check_against_split(features, final, frame, num_classes)
        return features
    except (CacheIntegrityError, OSError, ValueError, KeyError, TypeError) as exc:
        console.print(
            f"\\[cache] [bold red]corrupt cache entry[/] for {split}: {exc}; deleting and rebuilding it"
        )
        shutil.rmtree(final, ignore_errors=True)
        return None
