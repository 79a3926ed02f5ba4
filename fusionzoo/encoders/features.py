"""Token features of one dataset split, as the fusion model consumes them (frozen mode).

A :class:`FeatureSplit` holds, for N samples:

    image_tokens   (N, Li, Ei) float16   every image has the same number of tokens
    text_tokens    (T, Et) float16       all texts' tokens concatenated, no padding (T = Σ lengths)
    text_offsets   (N + 1,) int64        sample i's tokens are text_tokens[offsets[i]:offsets[i+1]]
    labels         (N,) int64
    meta           DataFrame, N rows: item_id, geo, label_source, is_human, label
    info           dict: provenance (cache path, reused/resumed, dropped bad items, truncated texts)
    sources        {"image_tokens": path, "text_tokens": path} when the arrays are raw files (the cache)

Arrays may be numpy memmaps (the cache) or in-memory arrays (tests). :func:`collate_features` pads
text per batch and returns the batch dict every trainer and fusion model reads.

When ``sources`` is set, :func:`collate_features` reads the batch's rows with ``os.pread`` instead of
through the memory map: on current kernels a page fault in a file mapping maps a whole large folio
(up to 2 MB) around the row, so a shuffled epoch over a memmap makes the resident set grow to the
whole file; explicit reads keep it at one batch, however large the dataset.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset


@dataclass
class FeatureSplit:
    image_tokens: np.ndarray
    text_tokens: np.ndarray
    text_offsets: np.ndarray
    labels: np.ndarray
    meta: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)  # where it came from: cache path, reused, ...
    sources: dict[str, str] | None = None  # raw little-endian files behind image_tokens / text_tokens

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.image_tokens.shape[0] != n or len(self.text_offsets) != n + 1 or len(self.meta) != n:
            raise ValueError(
                f"inconsistent feature split: {self.image_tokens.shape[0]} images, {len(self.text_offsets) - 1} "
                f"texts, {n} labels, {len(self.meta)} meta rows"
            )
        if n and int(self.text_offsets[-1]) != self.text_tokens.shape[0]:
            raise ValueError(
                f"text offsets end at {int(self.text_offsets[-1])} but there are {self.text_tokens.shape[0]} tokens"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def _descriptor(self, name: str) -> int | None:
        """An open file descriptor (per process, so DataLoader workers get their own) for a source."""
        if not self.sources or name not in self.sources:
            return None
        cache = self.__dict__.setdefault("_descriptors", {})
        key = (os.getpid(), name)
        if key not in cache:
            cache[key] = os.open(self.sources[name], os.O_RDONLY)
        return cache[key]

    def __del__(self) -> None:
        for (pid, _), fd in self.__dict__.get("_descriptors", {}).items():
            if pid == os.getpid():
                with contextlib.suppress(OSError):
                    os.close(fd)

    def read_image_rows(self, sorted_rows: np.ndarray) -> np.ndarray:
        """``image_tokens[sorted_rows]`` (ascending rows), by pread of row runs when backed by a file."""
        fd = self._descriptor("image_tokens")
        if fd is None:
            return np.asarray(self.image_tokens[sorted_rows])
        shape = self.image_tokens.shape[1:]
        row_bytes = int(np.prod(shape)) * self.image_tokens.itemsize
        out = np.empty((len(sorted_rows), *shape), dtype=self.image_tokens.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        for first, count in _runs(sorted_rows):
            _pread_into(
                fd, view[first * row_bytes : (first + count) * row_bytes], int(sorted_rows[first]) * row_bytes
            )
        return out

    def read_text(self, start: int, end: int) -> np.ndarray:
        """``text_tokens[start:end]`` by pread when backed by a file."""
        fd = self._descriptor("text_tokens")
        if fd is None:
            return np.asarray(self.text_tokens[start:end])
        width = self.text_tokens.shape[1]
        out = np.empty((end - start, width), dtype=self.text_tokens.dtype)
        row_bytes = width * self.text_tokens.itemsize
        _pread_into(fd, memoryview(out.reshape(-1).view(np.uint8)), start * row_bytes)
        return out

    @property
    def image_dim(self) -> int:
        return int(self.image_tokens.shape[-1])

    @property
    def text_dim(self) -> int:
        return int(self.text_tokens.shape[-1])

    @property
    def num_image_tokens(self) -> int:
        return int(self.image_tokens.shape[1])

    def text_lengths(self) -> np.ndarray:
        return np.diff(self.text_offsets)

    def subset(self, indices: np.ndarray) -> FeatureSplit:
        """An in-memory copy of the selected samples (used for small subsets, e.g. tests)."""
        indices = np.asarray(indices, dtype=np.int64)
        pieces = [
            np.asarray(self.text_tokens[self.text_offsets[i] : self.text_offsets[i + 1]]) for i in indices
        ]
        lengths = np.array([len(p) for p in pieces], dtype=np.int64)
        return FeatureSplit(
            image_tokens=np.asarray(self.image_tokens[indices]),
            text_tokens=np.concatenate(pieces) if pieces else self.text_tokens[:0],
            text_offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            labels=np.asarray(self.labels[indices]),
            meta=self.meta.iloc[indices].reset_index(drop=True),
        )


class FeatureDataset(Dataset):
    """Index-able view of a :class:`FeatureSplit`; items are ``(index, image, text)`` numpy views."""

    def __init__(self, features: FeatureSplit) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> int:
        return index

    def collate(self, indices: list[int]) -> dict[str, torch.Tensor]:
        return collate_features(self.features, indices)


def collate_features(features: FeatureSplit, indices: list[int] | np.ndarray) -> dict[str, torch.Tensor]:
    """Batch dict: image (B, Li, Ei), image_mask (B, Li), text (B, Lmax, Et), text_mask, label, index.

    Reads contiguous image rows in one slice where possible; pads text to the batch's longest text.
    Features come back as float32.
    """
    idx = np.asarray(indices, dtype=np.int64)
    order = np.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    image = features.read_image_rows(sorted_idx).astype(np.float32)[np.argsort(order, kind="stable")]
    starts, ends = features.text_offsets[idx], features.text_offsets[idx + 1]
    lengths = (ends - starts).astype(np.int64)
    max_len = max(1, int(lengths.max()) if len(lengths) else 1)
    text = np.zeros((len(idx), max_len, features.text_dim), dtype=np.float32)
    for row, (start, end) in enumerate(zip(starts, ends, strict=True)):
        text[row, : end - start] = features.read_text(int(start), int(end))
    text_mask = np.arange(max_len)[None, :] < lengths[:, None]
    return {
        "image": torch.from_numpy(image),
        "image_mask": torch.ones(image.shape[:2], dtype=torch.bool),
        "text": torch.from_numpy(text),
        "text_mask": torch.from_numpy(text_mask),
        "label": torch.from_numpy(np.asarray(features.labels[idx], dtype=np.int64)),
        "index": torch.from_numpy(idx),
    }


def _runs(sorted_rows: np.ndarray) -> list[tuple[int, int]]:
    """``(position, count)`` of each run of consecutive row numbers in an ascending array."""
    if len(sorted_rows) == 0:
        return []
    breaks = np.flatnonzero(np.diff(sorted_rows) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(sorted_rows)]])
    return [(int(a), int(b - a)) for a, b in zip(starts, ends, strict=True)]


def _pread_into(fd: int, buffer: memoryview, offset: int) -> None:
    done = 0
    while done < len(buffer):
        got = os.preadv(fd, [buffer[done:]], offset + done)
        if got <= 0:
            raise OSError(f"unexpected end of feature file (fd {fd}) at byte {offset + done}")
        done += got
