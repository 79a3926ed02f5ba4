"""Encode one cache entry as chunk-range shards on several workers, then commit it as one entry.

:class:`ShardedEncoder` is an ``encode_entry`` for :func:`fusionzoo.encoders.cache.encode_splits`. A
format-2 entry is encoded in two phases (the distinct images, then the distinct texts of the rows
whose image was readable), so the sharding follows them: the split's distinct images are cut into
``shards`` ranges at chunk boundaries and encoded by the normal chunked loop, each into its own folder
``<entry>.partial/shards/image-<start>-<stop>/`` (its own chunk files and journal, so an interrupted
shard resumes from its last complete chunk and a finished shard is never redone); once every image
shard is done the unreadable images are known, and the distinct texts are sharded the same way
(``text-<start>-<stop>/``). The driver then concatenates the shards' chunks, in order, into the
entry's chunk files with the usual journal (item numbers shifted by each shard's start; the bytes and
their sha256 are unchanged) and ``encode_splits`` finishes the entry atomically (index arrays,
manifest, one rename). Because shards start at chunk boundaries and batches never straddle a chunk,
the batches are those of an unsharded encode: the features are the same.

*Where* the shards run is a ``run_shards(jobs) -> iterator of results`` callable: :func:`run_here`
(this process, one after the other; tests) or :class:`LauncherShards`, which hands each shard as a
:class:`ShardTask` to any launcher of the ``[run]`` settings (the warm process pool for ``--jobs N``,
Ray, submitit), the encoders travelling once per worker as the tasks' input. A shard whose worker
cannot write to the driver's folder (no shared storage) has its files sent back, and the launcher
writes them into the shard's folder.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.encoders.cache_format import FILES, FORMAT_VERSION, read_journal, write_journal
from fusionzoo.encoders.cache_plan import distinct_images, distinct_texts, kept_after_images

__all__ = [
    "LauncherShards",
    "ShardJob",
    "ShardTask",
    "ShardResult",
    "ShardedEncoder",
    "concatenate_shards",
    "encode_shard",
    "run_here",
    "shard_ranges",
    "store_shard_files",
]


def shard_ranges(items: int, shards: int, chunk_rows: int) -> list[tuple[int, int]]:
    """``shards`` (or fewer) ranges covering ``0..items``, each starting at a chunk boundary."""
    chunks = max(1, -(-items // chunk_rows))
    shards = max(1, min(int(shards), chunks))
    per, extra = divmod(chunks, shards)
    ranges, chunk = [], 0
    for i in range(shards):
        count = per + (1 if i < extra else 0)
        start, stop = chunk * chunk_rows, min(items, (chunk + count) * chunk_rows)
        if start < stop:
            ranges.append((start, stop))
        chunk += count
    return ranges


@dataclass
class ShardJob:
    """One range of one phase of one entry, and everything a worker needs to encode it."""

    label: str
    phase: str  # "image" or "text"
    start: int
    stop: int
    folder: str  # the shard's folder under the driver's <entry>.partial/shards/
    key: str
    payload: dict[str, Any]
    batch_size: int
    chunk_rows: int
    frame: pd.DataFrame | None = None  # image phase: the rows of distinct images start..stop
    texts: list[str] | None = None  # text phase: distinct texts start..stop
    options: dict[str, Any] = field(default_factory=dict)  # num_workers: set by the runner


@dataclass
class ShardResult:
    job: ShardJob
    log: str = ""
    files: dict[str, bytes] | None = None  # set when the worker could not write to the shard folder
    status: str = "ok"  # "failed": the worker died (error says why); its complete chunks are kept
    error: str = ""


@dataclass
class ShardTask:
    """One shard as a launcher task: encode ``job`` into ``checkpoint_dir`` (the shard's folder) with
    the encoder pair the task's input names. An interrupted shard keeps its complete chunks (the rerun
    resumes them), so :meth:`discard` removes nothing."""

    job: ShardJob
    input: str  # the key of the (image encoder, text encoder) pair in the driver's inputs
    checkpoint_dir: Path | None = None
    whole_gpu: bool = True  # one GPU per shard on a GPU cluster

    def __post_init__(self) -> None:
        if self.checkpoint_dir is None:
            self.checkpoint_dir = Path(self.job.folder)

    @property
    def key(self) -> str:
        return f"{self.job.label}:{self.job.phase}:{self.job.start}-{self.job.stop}"

    @property
    def label(self) -> str:
        return f"encode {self.job.label} {self.job.phase}s {self.job.start}-{self.job.stop}"

    def required_files(self) -> list[str]:
        """A few of the shard's images: every node must read them at the same path (they do not travel)."""
        frame = self.job.frame
        return (
            [str(p) for p in frame["image_path"].head(3)]
            if frame is not None and "image_path" in frame
            else []
        )

    def execute(self, context: Any) -> ShardResult:
        import torch

        image, text = context.data
        device = context.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return encode_shard(self.job, image, text, folder=self.checkpoint_dir, device=device)

    def failed(self, error: str) -> ShardResult:
        return ShardResult(self.job, status="failed", error=error)

    def discard(self) -> None:
        """Nothing: the complete chunks of an interrupted shard are kept for the rerun."""

    def absolute(self) -> ShardTask:
        folder = Path(self.job.folder).resolve()
        return replace(self, job=replace(self.job, folder=str(folder)), checkpoint_dir=folder)

    def with_checkpoint(self, folder: Path | None) -> ShardTask:
        return replace(self, checkpoint_dir=folder)


class LauncherShards:
    """The ``run_shards`` of a :class:`ShardedEncoder` on a launcher (``--jobs N``, ``--launcher ray``):
    each shard a :class:`ShardTask`; ``encoders`` (image, text) travel once per worker process."""

    def __init__(
        self, launcher: Any, image_encoder: Any, text_encoder: Any, say: Callable[[str], None] | None = None
    ) -> None:
        self.launcher = launcher
        self.encoders = (image_encoder, text_encoder)
        self.key = f"encoders:{id(self)}"
        self.say = say or (lambda message: None)

    def __call__(self, jobs: Iterable[ShardJob]) -> Iterator[ShardResult]:
        results: list[ShardResult] = []
        self.each(list(jobs), results.append)
        yield from results

    def each(self, jobs: list[ShardJob], handle: Callable[[ShardResult], None]) -> None:
        """Run ``jobs`` and call ``handle`` with each result as its shard ends."""
        tasks = [ShardTask(job, self.key) for job in jobs]
        self.launcher.run(tasks, lambda key: self.encoders, _ShardDriver(handle, self.say))


class _ShardDriver:
    """Hands each finished shard to the encoder, and the launcher's lines to the console."""

    def __init__(self, handle: Callable[[ShardResult], None], say: Callable[[str], None]) -> None:
        self.handle, self.note = handle, say

    def progress(self, task: Any, event: dict[str, Any]) -> None:
        pass

    def finished(self, record: ShardResult) -> None:
        self.handle(record)


def _items(job: ShardJob) -> int:
    return job.stop - job.start


def shard_done(folder: Path, items: int, key: str) -> bool:
    """True when the shard folder's journal covers all its ``items`` (for this entry ``key``)."""
    journal = read_journal(folder, key)
    return journal is not None and max((c["stop"] for c in journal["chunks"]), default=0) >= items


def encode_shard(
    job: ShardJob, image_encoder: Any, text_encoder: Any, folder: Path | None = None, device: Any = "cpu"
) -> ShardResult:
    """Encode ``job``'s items into ``folder`` (default: the job's folder) with the chunked loop."""
    import torch
    from rich.console import Console

    from fusionzoo.encoders.cache import _EntryEncoder
    from fusionzoo.encoders.cache_format import truncate_to_journal
    from fusionzoo.progress import progress_bar

    target = Path(folder or job.folder)
    log = io.StringIO()
    console = Console(file=log, width=200, soft_wrap=True)
    device = torch.device(device)
    image_encoder.to(device).eval()
    text_encoder.to(device).eval()
    with progress_bar(console, enabled=False) as progress:
        writer = _EntryEncoder(
            image_encoder, text_encoder, device, job.batch_size, job.chunk_rows,
            job.options.get("num_workers", 0), "skip", console, progress, None,
        )  # fmt: skip
        writer.label = f"{job.label} {job.phase}s {job.start:,}..{job.stop:,}"
        writer.partial = target
        writer.journal = writer._resume(job.key, job.payload, _items(job))
        writer.ends = truncate_to_journal(target, writer.journal)
        write_journal(target, writer.journal)
        writer._say_resume(job.phase, _items(job))
        if job.phase == "image":
            assert job.frame is not None
            writer.images(job.frame, np.arange(len(job.frame)))
        else:
            assert job.texts is not None
            writer.texts(job.texts)
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


def _shifted(chunk: dict[str, Any], start: int) -> dict[str, Any]:
    """A shard's chunk record in the entry's numbering (items start..stop of the whole split)."""
    out = {k: v for k, v in chunk.items() if k not in ("files", "index")}
    out["start"], out["stop"] = start + int(chunk["start"]), start + int(chunk["stop"])
    for name in ("bad", "truncated"):  # distinct image / text positions
        if name in chunk:
            out[name] = [start + int(i) for i in chunk[name]]
    return out


def concatenate_shards(
    partial: Path, shards: list[tuple[int, Path]], key: str, journal: dict[str, Any]
) -> dict[str, Any]:
    """Write the shards' chunks, in order (``(start, folder)`` of each, image shards first), as the
    entry's chunk files, and ``journal`` (with those chunks) as its journal, in ``partial``."""
    journal = {**journal, "chunks": []}
    ends = dict.fromkeys(FILES, 0)
    handles = {name: open(partial / name, "wb") for name in FILES}  # noqa: SIM115 - closed below
    try:
        for start, folder in shards:
            shard = read_journal(folder, key)
            assert shard is not None, folder
            if "image_shape" in shard:
                journal["image_shape"] = shard["image_shape"]
            for chunk in shard["chunks"]:
                entry = {**_shifted(chunk, start), "index": len(journal["chunks"]), "files": {}}
                for name, (offset, length, digest) in chunk["files"].items():
                    _copy_range(folder / name, handles[name], offset, length)  # same bytes, same sha256
                    entry["files"][name] = [ends[name], length, digest]
                    ends[name] += length
                journal["chunks"].append(entry)
        for handle in handles.values():
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        for handle in handles.values():
            handle.close()
    write_journal(partial, journal)
    return journal


class ShardedEncoder:
    """The ``encode_entry`` of :func:`~fusionzoo.encoders.cache.encode_splits` that encodes chunk-range
    shards through ``run_shards`` and concatenates them (see the module docstring)."""

    def __init__(self, run_shards: Callable[[list[ShardJob]], Iterable[ShardResult]], shards: int) -> None:
        if shards < 1:
            raise ValueError(f"shards must be >= 1, got {shards}")
        self.run_shards, self.shards = run_shards, shards
        self.ran: list[tuple[str, str, int, int]] = []  # (label, phase, start, stop) encoded now

    def __call__(
        self, writer: Any, frame: pd.DataFrame, partial: Path, key: str, payload: dict[str, Any], label: str
    ) -> np.ndarray:
        first_images, image_of_row = distinct_images(frame)
        partial.mkdir(parents=True, exist_ok=True)
        journal = read_journal(partial, key)
        if journal is None or journal.get("images") != len(first_images) or not journal.get("sharded"):
            root = partial / "shards"
            image_folders = self._phase(
                writer, "image", len(first_images), root, key, payload, label,
                lambda a, b: {"frame": frame.iloc[first_images[a:b]].reset_index(drop=True)},
            )  # fmt: skip
            bad = set()
            for start, folder in image_folders:
                shard = read_journal(folder, key) or {"chunks": []}
                bad |= {start + int(i) for c in shard["chunks"] for i in c.get("bad", [])}
            kept = kept_after_images(image_of_row, bad)
            first_texts, _ = distinct_texts(frame["text"].iloc[kept])
            texts = frame["text"].astype(str).iloc[kept].iloc[first_texts].tolist()
            text_folders = self._phase(
                writer, "text", len(texts), root, key, payload, label, lambda a, b: {"texts": texts[a:b]}
            )
            for name in FILES:
                (partial / name).unlink(missing_ok=True)
            base = {
                "format": FORMAT_VERSION,
                "key": key,
                "payload": payload,
                "images": len(first_images),
                "chunk_rows": writer.chunk_rows,
                "batch_size": writer.batch_size,
                "sharded": True,
            }
            concatenate_shards(partial, image_folders + text_folders, key, base)
            shutil.rmtree(root, ignore_errors=True)  # the entry's files hold everything now
        # the writer resumes the complete partial entry: it checks every chunk and has nothing to encode
        return writer.run(frame, partial, key, payload, label)

    def _phase(
        self, writer: Any, phase: str, items: int, root: Path, key: str, payload: dict[str, Any], label: str,
        data: Callable[[int, int], dict[str, Any]],
    ) -> list[tuple[int, Path]]:  # fmt: skip
        """Encode the shards of one phase not finished yet; returns ``(start, folder)`` of every shard."""
        ranges = shard_ranges(items, self.shards, writer.chunk_rows) if items else []
        folders = [(start, stop, root / f"{phase}-{start:010d}-{stop:010d}") for start, stop in ranges]
        if root.exists():  # shards of another plan (other shard count or chunk size)
            for stale in {p.name for p in root.glob(f"{phase}-*")} - {f.name for *_, f in folders}:
                shutil.rmtree(root / stale, ignore_errors=True)
        todo = [
            ShardJob(
                label,
                phase,
                start,
                stop,
                str(folder),
                key,
                payload,
                writer.batch_size,
                writer.chunk_rows,
                options={"num_workers": 0 if writer.num_workers is None else writer.num_workers},
                **data(start, stop),
            )  # fmt: skip
            for start, stop, folder in folders
            if not shard_done(folder, stop - start, key)
        ]
        kept = len(folders) - len(todo)
        writer.console.print(
            f"\\[cache] {label}: {items:,} distinct {phase}s in {len(folders)} shard(s)"
            + (f"; {kept} finished shard(s) kept from an interrupted encode" if kept else "")
        )
        task = writer.progress.add_task(
            f"{phase}s {label} (shards)", total=items, completed=items - sum(map(_items, todo))
        )
        errors: list[str] = []

        def handle(result: ShardResult) -> None:
            if result.status == "failed":
                errors.append(f"{result.job.phase}s {result.job.start}..{result.job.stop}: {result.error}")
                return
            store_shard_files(result)
            self.ran.append((label, phase, result.job.start, result.job.stop))
            for line in result.log.splitlines():
                if "resuming" in line:
                    writer.console.print(line)
            writer.progress.advance(task, _items(result.job))

        if todo and hasattr(self.run_shards, "each"):  # a launcher: each result as its shard ends
            self.run_shards.each(todo, handle)
        else:
            for result in self.run_shards(todo) if todo else ():
                handle(result)
        missing = [f for a, b, f in folders if not shard_done(f, b - a, key)]
        if missing:
            raise RuntimeError(
                f"{label}: shard(s) {', '.join(f.name for f in missing)} did not finish"
                + (f" ({'; '.join(errors)})" if errors else "")
            )
        return [(start, folder) for start, _, folder in folders]
