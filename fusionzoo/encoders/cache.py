"""The token-feature cache (frozen mode): encode each split's distinct inputs once, read them back
memory-mapped.

:func:`encode_splits` returns one :class:`~fusionzoo.encoders.features.FeatureSplit` per split: from
the cache when an identical entry exists (see :mod:`fusionzoo.encoders.cache_format` for the layout
and the integrity checks), else encoded now (:mod:`fusionzoo.encoders.cache_plan` for what is
distinct, the chunks and the size estimate). Encoding a split runs two phases into
``<entry>.partial/``:

1. **images**: each distinct image file once (items that share an image share its tokens), decoded by
   DataLoader workers, in chunks of ``chunk_rows`` distinct images; unreadable images are recorded and
   every row that uses one is dropped (``on_bad_image="skip"``) or the encode stops, naming them
   (``"fail"``), before any text is encoded;
2. **texts**: each distinct text of the kept rows once, tokenized and encoded in chunks.

Each committed chunk is fsynced and journaled, so a killed run resumes at the next chunk; an entry is
locked (``filelock``) while it is built, so two processes never build the same one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from fusionzoo.data.base import SPLITS, DatasetSplits
from fusionzoo.encoders.cache_format import (
    FILES,
    FORMAT_VERSION,
    CacheIntegrityError,
    append_chunk,
    check_against_split,
    chunk_problems,
    default_cache_dir,
    entry_key,
    finish_entry,
    open_entry,
    read_journal,
    truncate_to_journal,
    write_journal,
)
from fusionzoo.encoders.cache_plan import (
    check_space,
    chunk_batches,
    distinct_images,
    distinct_texts,
    estimate_bytes,
    kept_after_images,
)
from fusionzoo.encoders.errors import EncoderError
from fusionzoo.encoders.features import FeatureSplit
from fusionzoo.encoders.image import ImageEncoder
from fusionzoo.encoders.rows import image_text_dataset
from fusionzoo.encoders.text import TextEncoder
from fusionzoo.io import human_bytes, wait_for_lock
from fusionzoo.progress import progress_bar

__all__ = ["encode_splits", "estimate_bytes"]  # the format (open_entry, entry_key, ...): cache_format


class _CollateImages:
    """Stack the pixels of the readable images of a batch of raw items (runs inside the workers)."""

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        ok = [bool(item["ok"]) and item["image"] is not None for item in items]
        good = [item["image"] for item, flag in zip(items, ok, strict=True) if flag]
        return {
            "index": [int(item["index"]) for item in items],
            "ok": ok,
            "pixels": torch.stack(good) if good else None,
        }


def refuse_unreadable(frames: dict[str, pd.DataFrame]) -> None:
    """``--on-bad-image fail``: an :class:`EncoderError` naming every image file of the ``frames`` (by
    split) that does not open (:func:`~fusionzoo.data.images.unreadable_images`), before anything is
    encoded."""
    from fusionzoo.data.images import unreadable_images

    paths = {split: frame["image_path"].astype(str) for split, frame in frames.items()}
    bad = unreadable_images(pd.unique(pd.concat(list(paths.values()), ignore_index=True)))
    if not bad:
        return
    users = {
        split: frames[split].loc[p.isin(set(bad)), "item_id"].astype(str).tolist()
        for split, p in paths.items()
    }
    ids = [i for split_ids in users.values() for i in split_ids]
    per_split = ", ".join(f"{split} {len(u)}" for split, u in users.items() if u)
    files = [f"{path} ({why})" for path, why in list(bad.items())[:5]]
    raise EncoderError(
        f"{len(bad)} unreadable image(s) used by {len(ids)} row(s) ({per_split}), nothing encoded: "
        f"{'; '.join(files)}{' …' if len(bad) > 5 else ''} (item_ids {', '.join(ids[:5])}); fix or remove "
        "those files, or use --on-bad-image skip"
    )


def _to_f16(tensor: torch.Tensor) -> np.ndarray:
    limit = float(np.finfo(np.float16).max)
    return tensor.float().clamp(-limit, limit).to(torch.float16).cpu().numpy()


@dataclass
class _EntryEncoder:
    """Encodes splits into partial entries with fixed encoders and options (one entry per :meth:`run`)."""

    image_encoder: ImageEncoder
    text_encoder: TextEncoder
    device: torch.device
    batch_size: int
    chunk_rows: int
    num_workers: int | None
    on_bad_image: str
    console: Any
    progress: Any
    on_chunk: Callable[[str, int], None] | None
    label: str = ""
    partial: Path = Path()
    journal: dict[str, Any] = field(default_factory=dict)
    ends: dict[str, int] = field(default_factory=dict)

    def run(
        self, frame: pd.DataFrame, partial: Path, key: str, payload: dict[str, Any], label: str
    ) -> np.ndarray:
        """Encode (or continue encoding) one split into ``partial``; returns each row's distinct image."""
        first_images, image_of_row = distinct_images(frame)
        self.label, self.partial = label, partial
        self.journal = self._resume(key, payload, len(first_images))
        self.ends = truncate_to_journal(partial, self.journal)
        write_journal(partial, self.journal)
        self._say_resume("image", len(first_images))
        self.images(frame, first_images)
        bad = {int(i) for c in self.journal["chunks"] if c["phase"] == "image" for i in c.get("bad", [])}
        kept = kept_after_images(image_of_row, bad)
        if bad and self.on_bad_image == "fail":  # a file that opened but does not decode (truncated)
            bad_ids = frame["item_id"].astype(str).drop(frame.index[kept]).tolist()
            files = frame["image_path"].astype(str).iloc[first_images[sorted(bad)]].tolist()
            shutil.rmtree(partial, ignore_errors=True)
            raise EncoderError(
                f"{label}: {len(bad)} unreadable image(s) used by {len(bad_ids)} row(s): "
                f"{', '.join(files[:5])}{' …' if len(files) > 5 else ''} (item_ids {', '.join(bad_ids[:5])}); "
                "fix or remove those files, or use --on-bad-image skip"
            )
        first_texts, _ = distinct_texts(frame["text"].iloc[kept])
        texts = frame["text"].astype(str).iloc[kept].iloc[first_texts].tolist()
        self._say_resume("text", len(texts))
        self.texts(texts)
        return image_of_row

    def _resume(self, key: str, payload: dict[str, Any], images: int) -> dict[str, Any]:
        """The partial entry's journal (same key and distinct images) minus its damaged chunks, or a
        new journal (and the partial files are discarded)."""
        self.partial.mkdir(parents=True, exist_ok=True)
        journal = read_journal(self.partial, key)
        if journal is not None and journal.get("images") == images:
            problems = chunk_problems(self.partial, journal["chunks"], hashes=True)
            if problems:
                first_bad, what = problems[0]
                self.console.print(
                    f"\\[cache] {self.label}: partial entry chunk {first_bad} is damaged ({what}); "
                    f"resuming from the chunk before it"
                )
                journal["chunks"] = [c for c in journal["chunks"] if c["index"] < first_bad]
            return journal
        for name in FILES:
            (self.partial / name).unlink(missing_ok=True)
        return {
            "format": FORMAT_VERSION,
            "key": key,
            "payload": payload,
            "images": images,
            "chunk_rows": self.chunk_rows,
            "batch_size": self.batch_size,
            "chunks": [],
        }

    def done(self, phase: str) -> int:
        """Distinct items of ``phase`` (``image``/``text``) already in committed chunks."""
        return max((c["stop"] for c in self.journal["chunks"] if c["phase"] == phase), default=0)

    def _say_resume(self, phase: str, total: int) -> None:
        start = self.done(phase)
        if start and start < total:
            kept = len([c for c in self.journal["chunks"] if c["phase"] == phase])
            self.console.print(
                f"\\[cache] {self.label}: resuming an interrupted encode at row {start:,} of {total:,} "
                f"distinct {phase}s ({kept} complete chunks kept)"
            )

    def _chunks(self, phase: str, total: int) -> tuple[list[list[list[int]]], Any]:
        start = self.done(phase)
        task = self.progress.add_task(f"{phase}s {self.label}", total=total, completed=start)
        journal = self.journal
        return chunk_batches(start, total, int(journal["chunk_rows"]), int(journal["batch_size"])), task

    def _commit(self, record: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        record = {**record, "index": len(self.journal["chunks"])}
        with contextlib.ExitStack() as stack:
            handles = {name: stack.enter_context(open(self.partial / name, "r+b")) for name in arrays}
            for name, handle in handles.items():
                handle.seek(self.ends[name])
            append_chunk(self.partial, self.journal, record, arrays, handles, self.ends)
        if self.on_chunk is not None:
            self.on_chunk(self.label, record["index"])

    def images(self, frame: pd.DataFrame, first_rows: np.ndarray) -> None:
        """Encode the distinct images not done yet (``first_rows[u]``: distinct image u's row)."""
        chunks, task = self._chunks("image", len(first_rows))
        if not chunks:
            return
        encoder, device = self.image_encoder, self.device
        todo = len(first_rows) - chunks[0][0][0]
        workers = _auto_workers(todo, device) if self.num_workers is None else self.num_workers
        loader = torch.utils.data.DataLoader(
            image_text_dataset(frame.iloc[first_rows], encoder.transform),
            batch_sampler=[batch for chunk in chunks for batch in chunk],
            num_workers=workers,
            collate_fn=_CollateImages(),
            pin_memory=device.type == "cuda",
            prefetch_factor=4 if workers else None,
        )
        batches = iter(loader)
        with _cpu_threads_beside_workers(device, workers):
            for chunk in chunks:
                tokens = [np.zeros((0, encoder.num_tokens, encoder.out_dim), np.float16)]
                bad: list[int] = []
                for _ in chunk:
                    batch = next(batches)
                    bad += [i for i, ok in zip(batch["index"], batch["ok"], strict=True) if not ok]
                    if batch["pixels"] is not None:
                        with torch.inference_mode():
                            tokens.append(_to_f16(encoder(batch["pixels"].to(device, non_blocking=True))))
                    self.progress.advance(task, len(batch["index"]))
                if len(tokens) > 1:
                    self.journal["image_shape"] = list(tokens[-1].shape[1:])
                record = {"phase": "image", "start": chunk[0][0], "stop": chunk[-1][-1] + 1, "bad": bad}
                self._commit(record, {"image_tokens.f16": np.concatenate(tokens)})

    def texts(self, texts: list[str]) -> None:
        """Encode the distinct texts not done yet (tokenized here: the tokenizer is fast)."""
        chunks, task = self._chunks("text", len(texts))
        encoder, device = self.text_encoder, self.device
        for chunk in chunks:
            flat, lengths, truncated = [], [], []
            for batch in chunk:
                tokens = encoder.tokenize([texts[i] for i in batch])
                with torch.inference_mode():
                    hidden, mask = encoder(tokens.input_ids.to(device), tokens.attention_mask.to(device))
                mask_np = mask.cpu().numpy()
                flat.append(_to_f16(hidden)[mask_np])  # (Σ lengths, Et): each text's real tokens in order
                lengths.append(mask_np.sum(1).astype(np.int64))
                truncated += [batch[i] for i in tokens.too_long]
                self.progress.advance(task, len(batch))
            record = {
                "phase": "text",
                "start": chunk[0][0],
                "stop": chunk[-1][-1] + 1,
                "truncated": truncated,
            }
            self._commit(
                record, {"text_tokens.f16": np.concatenate(flat), "text_lengths.i64": np.concatenate(lengths)}
            )


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
    """The entry at ``final`` if it is complete and sound; a damaged one is deleted (said) and None."""
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


def _device(device: str | torch.device) -> torch.device:
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
    return device


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
    encode_entry: Callable[..., np.ndarray] | None = None,
) -> dict[str, FeatureSplit]:
    """Token features of each split, from the cache when an identical entry exists, else encoded now.

    Each returned :class:`FeatureSplit` is memory-mapped; its ``info`` says whether it was ``reused``,
    ``resumed`` or encoded, where it lives, the dropped bad-image item ids and the truncated texts.
    ``on_bad_image``: ``skip`` drops the rows of unreadable images (counted, first item ids warned),
    ``fail`` raises. ``chunk_rows``: distinct images (or texts) per committed chunk. ``encode_entry``:
    what fills an entry's ``.partial`` folder, ``encode_entry(writer, frame, partial, key, payload,
    split) -> image_of_row`` (default: ``writer.run``, here chunk by chunk;
    :class:`fusionzoo.encoders.sharded.ShardedEncoder` spreads chunk ranges over workers).
    """
    from rich.console import Console

    if on_bad_image not in ("skip", "fail"):
        raise EncoderError(f"on_bad_image={on_bad_image!r}: expected 'skip' or 'fail'")
    if verify not in ("auto", "full", "size"):
        raise EncoderError(f"verify={verify!r}: expected auto, full or size")
    console = console or Console(stderr=True, soft_wrap=True)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    device = _device(device)
    image_encoder.to(device).eval()
    text_encoder.to(device).eval()
    batch_size = max(1, int(batch_size))
    chunk_rows = max(batch_size, (max(1, int(chunk_rows)) // batch_size) * batch_size)

    results: dict[str, FeatureSplit] = {}
    todo = []
    frames = {split: splits.split(split).reset_index(drop=True) for split in split_names}
    for split in split_names:
        key, payload = entry_key(splits, split, image_encoder, text_encoder, on_bad_image)
        final = root / f"{splits.name}-{split}-{key}"
        features = _try_open(
            final, verify, console, split, frame=frames[split], num_classes=splits.num_classes
        )
        if features is None:
            todo.append((split, key, payload, final))
            continue
        features.info.update(reused=True, resumed=False)
        console.print(
            f"\\[cache] {split}: reusing cached features ({len(features):,} rows, "
            f"{human_bytes(features.info['bytes'])}) from {final}"
        )
        results[split] = features
    if todo and on_bad_image == "fail":  # every image file opens before anything is encoded
        refuse_unreadable({split: frames[split] for split, *_ in todo})
    if todo:
        estimates = {split: estimate_bytes(frames[split], image_encoder, text_encoder) for split, *_ in todo}
        check_space(root, estimates, image_encoder, text_encoder, console)

    with progress_bar(console, enabled=progress) as bars:
        writer = _EntryEncoder(
            image_encoder, text_encoder, device, batch_size, chunk_rows, num_workers, on_bad_image, console,
            bars, on_chunk,
        )  # fmt: skip
        for split, key, payload, final in todo:
            frame = frames[split]
            partial = final.with_name(final.name + ".partial")

            def waiting(name: str = final.name) -> None:
                console.print(f"\\[cache] another process is encoding {name}; waiting for it")

            with wait_for_lock(final.with_name(final.name + ".lock"), waiting):
                features = _try_open(
                    final, verify, console, split, quiet=True, frame=frame, num_classes=splits.num_classes
                )
                if features is not None:  # another process finished it while we waited
                    features.info.update(reused=True, resumed=False)
                    results[split] = features
                    continue
                resumed = (partial / "journal.json").exists()
                started = time.perf_counter()
                if encode_entry is None:
                    image_of_row = writer.run(frame, partial, key, payload, split)
                else:
                    image_of_row = encode_entry(writer, frame, partial, key, payload, split)
                manifest = finish_entry(
                    frame, partial, final, writer.journal, image_of_row=image_of_row,
                    image_shape=[image_encoder.num_tokens, image_encoder.out_dim], text_dim=text_encoder.out_dim,
                )  # fmt: skip
                seconds = time.perf_counter() - started
            features = open_entry(final, "size", None)  # hashed while written
            features.info.update(reused=False, resumed=resumed, seconds=seconds)
            _report(console, split, len(frame), features, manifest, text_encoder.max_length)
            results[split] = features
    return {split: results[split] for split in split_names}


def _report(
    console: Any, split: str, rows: int, features: FeatureSplit, manifest: dict[str, Any], max_length: int
) -> None:
    bad = manifest["bad_items"]
    if bad:
        console.print(
            f"\\[cache] [yellow]warning[/]: {split}: dropped {len(bad)} row(s) with unreadable images, "
            f"first item_ids: {', '.join(bad[:5])} ({manifest['bad_images']} image file(s))"
        )
    if manifest["truncated_texts"]:
        console.print(
            f"\\[cache] {split}: {manifest['truncated_texts']:,} of {rows:,} texts were longer than "
            f"{max_length} tokens and were truncated"
        )
    seconds = features.info["seconds"]
    console.print(
        f"\\[cache] {split}: encoded {len(features):,} rows ({features.num_images:,} distinct images, "
        f"{features.num_texts:,} distinct texts) in {seconds:.1f} s ({rows / max(seconds, 1e-9):,.0f} "
        f"items/s) → {features.info['cache_path']}"
    )
