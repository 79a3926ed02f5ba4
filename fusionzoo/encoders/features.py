"""Token features of one dataset split, as the fusion model consumes them (frozen mode).

A :class:`FeatureSplit` holds, for N samples:

    image_tokens   (N, Li, Ei) float16   every image has the same number of tokens
    text_tokens    (T, Et) float16       all texts' tokens concatenated, no padding (T = Σ lengths)
    text_offsets   (N + 1,) int64        sample i's tokens are text_tokens[offsets[i]:offsets[i+1]]
    labels         (N,) int64
    meta           DataFrame, N rows: item_id, geo, label_source, is_human, label
    info           dict: provenance (cache path, reused/resumed, dropped bad items, truncated texts)

Arrays may be numpy memmaps (the cache) or in-memory arrays (tests). :func:`collate_features` pads
text per batch and returns the batch dict every trainer and fusion model reads.
"""

from __future__ import annotations

import contextlib
import mmap
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

RELEASE_EVERY = 256 << 20  # bytes read from a split's memory maps between two page releases


@dataclass
class FeatureSplit:
    image_tokens: np.ndarray
    text_tokens: np.ndarray
    text_offsets: np.ndarray
    labels: np.ndarray
    meta: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)  # where it came from: cache path, reused, ...

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

    def note_read(self, nbytes: int) -> None:
        """Count bytes read from memory maps; past :data:`RELEASE_EVERY` bytes, :meth:`release_pages`.

        Pages of a memory-mapped file stay in the process's resident set once touched, so an epoch
        over a cache larger than RAM would otherwise grow RSS to the whole file; dropping them every
        few hundred MB keeps peak RSS flat as the dataset grows (the data stays in the OS page cache,
        so re-reading them is cheap).
        """
        self._read_since_release = getattr(self, "_read_since_release", 0) + int(nbytes)
        if self._read_since_release >= RELEASE_EVERY:
            self.release_pages()

    def release_pages(self) -> None:
        """Drop this split's memory-mapped pages from the process (``madvise(MADV_DONTNEED)``)."""
        self._read_since_release = 0
        for array in (self.image_tokens, self.text_tokens):
            mapping = getattr(array, "_mmap", None)
            if mapping is None or not hasattr(mapping, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
                continue
            with contextlib.suppress(OSError, ValueError):
                mapping.madvise(mmap.MADV_DONTNEED)

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
    image = np.asarray(features.image_tokens[sorted_idx], dtype=np.float32)[np.argsort(order, kind="stable")]
    starts, ends = features.text_offsets[idx], features.text_offsets[idx + 1]
    lengths = (ends - starts).astype(np.int64)
    max_len = max(1, int(lengths.max()) if len(lengths) else 1)
    text = np.zeros((len(idx), max_len, features.text_dim), dtype=np.float32)
    for row, (start, end) in enumerate(zip(starts, ends, strict=True)):
        text[row, : end - start] = features.text_tokens[start:end]
    text_mask = np.arange(max_len)[None, :] < lengths[:, None]
    features.note_read(image.size * features.image_tokens.itemsize + int(lengths.sum()) * text.shape[-1] * 2)
    return {
        "image": torch.from_numpy(image),
        "image_mask": torch.ones(image.shape[:2], dtype=torch.bool),
        "text": torch.from_numpy(text),
        "text_mask": torch.from_numpy(text_mask),
        "label": torch.from_numpy(np.asarray(features.labels[idx], dtype=np.int64)),
        "index": torch.from_numpy(idx),
    }
