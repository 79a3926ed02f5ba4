"""Encode one cache entry as row shards on several workers, then commit it as one entry.

:class:`ShardedEncoder` is an ``encode_entry`` for :func:`fusionzoo.encoders.cache.encode_splits`: the
split's rows are cut into ``shards`` ranges at chunk boundaries; each range is encoded by the normal
chunked loop into its own folder ``<entry>.partial/shards/<start>-<stop>/`` (its own chunk files and
journal, so an interrupted shard resumes from its last complete chunk and a finished shard is never
redone); then the driver concatenates the shards' chunks, in row order, into the entry's files with
the usual journal (row numbers shifted by each shard's start) and ``encode_splits`` finishes the entry
atomically (manifest, then one rename). Because shards start at chunk boundaries and batches never
straddle a chunk, the batches are those of an unsharded encode: the features are the same.

*Where* the shards run is a ``run_shards(jobs) -> iterator of results`` callable: :func:`run_here`
(this process, one after the other; tests) or the Ray launcher's (:mod:`fusionzoo.launch.ray_encode`).
A shard job whose worker cannot write to the driver's folder (no shared storage) returns its files and
the driver writes them (:func:`store_shard_files`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.encoders.cache import FILES, _encode_entry, _Progress, _write_json_atomic

__all__ = [
    "ShardJob",
    "ShardResult",
    "ShardedEncoder",
    "concatenate_shards",
    "encode_shard",
    "run_here",
    "shard_ranges",
    "store_shard_files",
]


def shard_ranges(rows: int, shards: int, chunk_rows: int) -> list[tuple[int, int]]:
    """``shards`` (or fewer) row ranges covering ``0..rows``, each starting at a chunk boundary."""
    chunks = max(1, -(-rows // chunk_rows))
    shards = max(1, min(int(shards), chunks))
    per, extra = divmod(chunks, shards)
    ranges, chunk = [], 0
    for i in range(shards):
        count = per + (1 if i < extra else 0)
        start, stop = chunk * chunk_rows, min(rows, (chunk + count) * chunk_rows)
        if start < stop:
            ranges.append((start, stop))
        chunk += count
    return ranges


@dataclass
class ShardJob:
    """One row range of one entry, and everything a worker needs to encode it."""

    label: str
    start: int
    stop: int
    folder: str  # the shard's folder under the driver's <entry>.partial/shards/
    frame: pd.DataFrame  # the split frame's rows start..stop (re-indexed from 0)
    key: str
    payload: dict[str, Any]
    batch_size: int
    chunk_rows: int
    on_bad_image: str
    options: dict[str, Any] = field(default_factory=dict)  # device, num_workers: set by the runner


@dataclass
class ShardResult:
    job: ShardJob
    log: str = ""
    files: dict[str, bytes] | None = None  # set when the worker could not write to the shard folder


def _journal(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "journal.json").read_text())
    except (OSError, ValueError):
        return None


def shard_done(folder: Path, rows: int, key: str) -> bool:
    """True when the shard folder's journal covers all its ``rows`` (for this entry ``key``)."""
    journal = _journal(folder)
    if journal is None or journal.get("key") != key:
        return False
    return bool(journal["chunks"]) and int(journal["chunks"][-1]["row_end"]) >= rows


def encode_shard(
    job: ShardJob, image_encoder: Any, text_encoder: Any, folder: Path | None = None, device: Any = "cpu"
) -> ShardResult:
    """Encode ``job``'s rows into ``folder`` (default: the job's folder) with the chunked loop."""
    import torch
    from rich.console import Console

    target = Path(folder or job.folder)
    log = io.StringIO()
    console = Console(file=log, width=200, soft_wrap=True)
    device = torch.device(device)
    image_encoder.to(device).eval()
    text_encoder.to(device).eval()
    with _Progress(False, console) as progress:
        _encode_entry(
            job.frame,
            target,
            job.key,
            job.payload,
            image_encoder,
            text_encoder,
            batch_size=job.batch_size,
            chunk_rows=job.chunk_rows,
            device=device,
            num_workers=job.options.get("num_workers", 0),
            on_bad_image=job.on_bad_image,
            console=console,
            progress=progress,
            label=f"{job.label} rows {job.start:,}..{job.stop:,}",
            on_chunk=None,
        )
    return ShardResult(job, log.getvalue())


def store_shard_files(result: ShardResult) -> None:
    """Write a shard's returned files into its folder on the driver (temp folder, then a rename)."""
    if result.files is None:
        return
    folder = Path(result.job.folder)
    partial = folder.with_name(folder.name + ".incoming")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name, payload in result.files.items():
        (partial / name).write_bytes(payload)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(partial, folder)


def run_here(
    image_encoder: Any, text_encoder: Any, device: Any = "cpu"
) -> Callable[..., Iterator[ShardResult]]:
    """A ``run_shards`` that encodes the shards in this process, one after the other."""

    def run(jobs: Iterable[ShardJob]) -> Iterator[ShardResult]:
        for job in jobs:
            yield encode_shard(job, image_encoder, text_encoder, device=device)

    return run


def _copy_range(source: Path, target: Any, offset: int, length: int) -> None:
    with open(source, "rb") as handle:
        handle.seek(offset)
        remaining = length
        while remaining > 0:
            block = handle.read(min(remaining, 64 << 20))
            if not block:
                raise OSError(f"{source} ends {remaining} bytes early")
            target.write(block)
            remaining -= len(block)


def concatenate_shards(
    partial: Path, shards: list[tuple[int, int, Path]], key: str, payload: dict[str, Any], chunk_rows: int,
    batch_size: int,
) -> dict[str, Any]:  # fmt: skip
    """Write the shards' chunks, in row order, as the entry's chunk files and journal in ``partial``."""
    journal: dict[str, Any] = {
        "key": key,
        "payload": payload,
        "chunk_rows": chunk_rows,
        "batch_size": batch_size,
        "chunks": [],
    }
    ends = dict.fromkeys(FILES, 0)
    handles = {name: open(partial / name, "wb") for name in FILES}  # noqa: SIM115 - closed below
    try:
        for start, _stop, folder in shards:
            shard = _journal(folder)
            assert shard is not None
            if "image_shape" in shard:
                journal["image_shape"] = shard["image_shape"]
            for chunk in shard["chunks"]:
                entry: dict[str, Any] = {
                    "index": len(journal["chunks"]),
                    "row_end": start + int(chunk["row_end"]),
                    "files": {},
                    "kept": chunk["kept"],
                    "truncated": chunk["truncated"],
                }
                for name in FILES:
                    offset, length, digest = chunk["files"][name]
                    if name == "rows.i64":  # row numbers of the shard's frame -> of the split's frame
                        with open(folder / name, "rb") as handle:
                            handle.seek(offset)
                            rows = np.frombuffer(handle.read(length), dtype=np.int64) + start
                        data = rows.astype(np.int64).tobytes()
                        handles[name].write(data)
                        digest = hashlib.sha256(data).hexdigest()
                    else:  # unchanged bytes: copied, their sha256 stays valid
                        _copy_range(folder / name, handles[name], offset, length)
                    entry["files"][name] = [ends[name], length, digest]
                    ends[name] += length
                journal["chunks"].append(entry)
        for handle in handles.values():
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        for handle in handles.values():
            handle.close()
    _write_json_atomic(partial / "journal.json", journal)
    return journal


class ShardedEncoder:
    """The ``encode_entry`` of :func:`~fusionzoo.encoders.cache.encode_splits` that encodes row shards
    through ``run_shards`` and concatenates them (see the module docstring)."""

    def __init__(self, run_shards: Callable[[list[ShardJob]], Iterable[ShardResult]], shards: int) -> None:
        if shards < 1:
            raise ValueError(f"shards must be >= 1, got {shards}")
        self.run_shards, self.shards = run_shards, shards
        self.ran: list[tuple[str, int, int]] = []  # (label, start, stop) of the shards encoded now

    def __call__(
        self,
        frame: pd.DataFrame,
        partial: Path,
        key: str,
        payload: dict[str, Any],
        image_encoder: Any,
        text_encoder: Any,
        *,
        batch_size: int,
        chunk_rows: int,
        device: Any,
        num_workers: int | None,
        on_bad_image: str,
        console: Any,
        progress: Any,
        label: str,
        on_chunk: Any,
    ) -> dict[str, Any]:
        partial.mkdir(parents=True, exist_ok=True)
        if shard_done(partial, len(frame), key):  # concatenated before an interruption: commit only
            return _journal(partial) or {}
        root = partial / "shards"
        ranges = shard_ranges(len(frame), self.shards, chunk_rows)
        folders = [(start, stop, root / f"{start:010d}-{stop:010d}") for start, stop in ranges]
        stale = {p.name for p in root.iterdir()} - {f.name for *_, f in folders} if root.exists() else set()
        for name in stale:  # shards of another plan (other shard count or chunk size)
            shutil.rmtree(root / name, ignore_errors=True)
        todo = [
            ShardJob(
                label,
                start,
                stop,
                str(folder),
                frame.iloc[start:stop].reset_index(drop=True),
                key,
                payload,
                batch_size,
                chunk_rows,
                on_bad_image,
                {"num_workers": 0 if num_workers is None else num_workers},
            )  # fmt: skip
            for start, stop, folder in folders
            if not shard_done(folder, stop - start, key)
        ]
        kept = len(folders) - len(todo)
        console.print(
            f"\\[cache] {label}: {len(frame):,} rows in {len(folders)} shard(s)"
            + (f"; {kept} finished shard(s) kept from an interrupted encode" if kept else "")
        )
        task = progress.add(
            f"encode {label} (shards)", len(frame), len(frame) - sum(j.stop - j.start for j in todo)
        )
        for result in self.run_shards(todo):
            store_shard_files(result)
            self.ran.append((label, result.job.start, result.job.stop))
            for line in result.log.splitlines():
                if "resuming" in line:
                    console.print(line)
            progress.advance(task, result.job.stop - result.job.start)
        missing = [f for a, b, f in folders if not shard_done(f, b - a, key)]
        if missing:
            raise RuntimeError(f"{label}: shard(s) {', '.join(f.name for f in missing)} did not finish")
        for name in FILES:
            (partial / name).unlink(missing_ok=True)
        journal = concatenate_shards(partial, folders, key, payload, chunk_rows, batch_size)
        shutil.rmtree(root, ignore_errors=True)  # the entry's files hold everything now
        return journal
