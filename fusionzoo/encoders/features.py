"""Token features of one dataset split, as the fusion model consumes them (frozen mode).

Each distinct input is stored once: items that share an image file share its tokens, identical texts
share theirs. A :class:`FeatureSplit` of N rows holds

    image_tokens   (Ui, Li, Ei) float16   the Ui distinct images (every image has Li tokens)
    image_index    (N,) int64             row r's image is image_tokens[image_index[r]]
    text_tokens    (T, Et) float16        the Ut distinct texts' tokens back to back, no padding
    text_offsets   (Ut + 1,) int64        distinct text u is text_tokens[text_offsets[u]:text_offsets[u+1]]
    text_index     (N,) int64             row r's text is distinct text text_index[r]
    labels         (N,) int64
    meta           DataFrame, N rows: item_id, geo, label_source, is_human, label
    info           dict: provenance (cache path, reused/resumed, dropped bad items, truncated texts)
    sources        {"image_tokens": path, "text_tokens": path} when the arrays are raw files (the cache)

Without ``image_index``/``text_index`` (``None``) every row has its own image and text (Ui = Ut = N),
the layout synthetic features and tests build directly. Per-row accessors hide the sharing:
:meth:`FeatureSplit.image_rows`, :meth:`FeatureSplit.text_rows`, :meth:`FeatureSplit.text_lengths`.

Arrays may be numpy memmaps (the cache) or in-memory arrays (:meth:`FeatureSplit.in_memory`).
:func:`collate_features` builds the batch dict every trainer and fusion model reads (float32, text
padded to the batch's longest). When ``sources`` is set it reads the batch's distinct images and texts
with ``os.pread`` instead of through the memory map: on current kernels a page fault in a file mapping
maps a whole large folio (up to 2 MB) around the row, so a shuffled epoch over a memmap makes the
resident set grow to the whole file; explicit reads keep it at one batch, however large the dataset.

This module needs numpy and pandas only (torch is imported by :func:`collate_features` when called).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FeatureDataset", "FeatureSplit", "collate_features", "prefix_tokens"]


@dataclass
class FeatureSplit:
    image_tokens: np.ndarray
    text_tokens: np.ndarray
    text_offsets: np.ndarray
    labels: np.ndarray
    meta: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)  # where it came from: cache path, reused, ...
    sources: dict[str, str] | None = None  # raw little-endian files behind image_tokens / text_tokens
    image_index: np.ndarray | None = None  # (N,) row → distinct image; None: one image per row
    text_index: np.ndarray | None = None  # (N,) row → distinct text; None: one text per row

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.image_index is None:
            self.image_index = np.arange(self.image_tokens.shape[0], dtype=np.int64)
        if self.text_index is None:
            self.text_index = np.arange(len(self.text_offsets) - 1, dtype=np.int64)
        self.image_index = np.asarray(self.image_index, dtype=np.int64)
        self.text_index = np.asarray(self.text_index, dtype=np.int64)
        if len(self.image_index) != n or len(self.text_index) != n or len(self.meta) != n:
            raise ValueError(
                f"inconsistent feature split: {len(self.image_index)} image rows, {len(self.text_index)} text "
                f"rows, {n} labels, {len(self.meta)} meta rows"
            )
        for name, index, count in (
            ("image", self.image_index, self.image_tokens.shape[0]),
            ("text", self.text_index, len(self.text_offsets) - 1),
        ):
            if n and (index.min() < 0 or index.max() >= count):
                raise ValueError(f"the {name} index points outside the {count} stored {name}s")
        if len(self.text_offsets) and int(self.text_offsets[-1]) != self.text_tokens.shape[0]:
            raise ValueError(
                f"text offsets end at {int(self.text_offsets[-1])} but there are {self.text_tokens.shape[0]} tokens"
            )

    def __len__(self) -> int:
        return len(self.labels)

    # ------------------------------------------------------------------------------------ shapes
    @property
    def image_dim(self) -> int:
        return int(self.image_tokens.shape[-1])

    @property
    def text_dim(self) -> int:
        return int(self.text_tokens.shape[-1])

    @property
    def num_image_tokens(self) -> int:
        return int(self.image_tokens.shape[1])

    @property
    def num_images(self) -> int:
        """Distinct images stored."""
        return int(self.image_tokens.shape[0])

    @property
    def num_texts(self) -> int:
        """Distinct texts stored."""
        return len(self.text_offsets) - 1

    def stored_bytes(self) -> int:
        """Bytes of the stored token arrays (what :meth:`in_memory` holds)."""
        return int(self.image_tokens.nbytes + self.text_tokens.nbytes)

    def distinct_text_lengths(self) -> np.ndarray:
        """(Ut,) tokens of each distinct text."""
        return np.diff(np.asarray(self.text_offsets)).astype(np.int64)

    def text_lengths(self) -> np.ndarray:
        """(N,) tokens of each row's text."""
        return self.distinct_text_lengths()[self.text_index]

    # ------------------------------------------------------------------------------------ rows
    def image_rows(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), Li, Ei) float16: each row's image tokens (each distinct image read once)."""
        rows = np.asarray(rows, dtype=np.int64)
        distinct, inverse = np.unique(self.image_index[rows], return_inverse=True)
        return self.read_images(distinct)[inverse.reshape(-1)]

    def text_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(tokens (len(rows), Lmax, Et) float16 zero-padded, lengths (len(rows),))`` of each row's
        text; ``Lmax`` is the longest of these texts (at least 1)."""
        rows = np.asarray(rows, dtype=np.int64)
        distinct, inverse = np.unique(self.text_index[rows], return_inverse=True)
        padded, lengths = self.read_texts(distinct)
        inverse = inverse.reshape(-1)
        return padded[inverse], lengths[inverse]

    def read_images(self, distinct: np.ndarray) -> np.ndarray:
        """``image_tokens[distinct]`` (ascending indices), by pread of index runs when backed by a file."""
        distinct = np.asarray(distinct, dtype=np.int64)
        fd = self._descriptor("image_tokens")
        if fd is None:
            return np.asarray(self.image_tokens[distinct])
        shape = self.image_tokens.shape[1:]
        row_bytes = int(np.prod(shape)) * self.image_tokens.itemsize
        out = np.empty((len(distinct), *shape), dtype=self.image_tokens.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        for first, count in _runs(distinct):
            _pread_into(
                fd, view[first * row_bytes : (first + count) * row_bytes], int(distinct[first]) * row_bytes
            )
        return out

    def read_texts(self, distinct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(tokens (len(distinct), Lmax, Et) zero-padded, lengths)`` of distinct texts (ascending)."""
        distinct = np.asarray(distinct, dtype=np.int64)
        offsets = np.asarray(self.text_offsets)
        starts, ends = offsets[distinct], offsets[distinct + 1]
        lengths = (ends - starts).astype(np.int64)
        width = max(1, int(lengths.max()) if len(lengths) else 1)
        dim = self.text_dim
        fd = self._descriptor("text_tokens")
        if fd is None:
            flat = np.asarray(self.text_tokens)
            positions = np.arange(width)
            inside = positions[None, :] < lengths[:, None]
            gather = np.where(inside, starts[:, None] + positions[None, :], 0)
            padded = flat[gather.reshape(-1)].reshape(len(distinct), width, dim) if len(flat) else None
            if padded is None:
                return np.zeros((len(distinct), width, dim), self.text_tokens.dtype), lengths
            padded[~inside] = 0
            return padded, lengths
        padded = np.zeros((len(distinct), width, dim), dtype=self.text_tokens.dtype)
        row_bytes = dim * self.text_tokens.itemsize
        for first, count in _runs(distinct):  # consecutive distinct texts are contiguous on disk
            lo, hi = int(starts[first]), int(ends[first + count - 1])
            block = np.empty((hi - lo, dim), dtype=self.text_tokens.dtype)
            _pread_into(fd, memoryview(block.reshape(-1).view(np.uint8)), lo * row_bytes)
            for j in range(first, first + count):
                a, b = int(starts[j]) - lo, int(ends[j]) - lo
                padded[j, : b - a] = block[a:b]
        return padded, lengths

    # ------------------------------------------------------------------------------------ copies
    def in_memory(self) -> FeatureSplit:
        """The same split with every array read into RAM (float16 as stored; no pread, no memmap)."""
        return FeatureSplit(
            image_tokens=np.array(self.image_tokens),
            text_tokens=np.array(self.text_tokens),
            text_offsets=np.array(self.text_offsets, dtype=np.int64),
            labels=np.array(self.labels, dtype=np.int64),
            meta=self.meta,
            info=dict(self.info),
            image_index=self.image_index.copy(),
            text_index=self.text_index.copy(),
        )

    def subset(self, indices: np.ndarray) -> FeatureSplit:
        """An in-memory copy of the selected rows (shared inputs stay shared)."""
        indices = np.asarray(indices, dtype=np.int64)
        images, image_index = np.unique(self.image_index[indices], return_inverse=True)
        texts, text_index = np.unique(self.text_index[indices], return_inverse=True)
        offsets = np.asarray(self.text_offsets)
        pieces = [np.asarray(self.text_tokens[offsets[u] : offsets[u + 1]]) for u in texts]
        lengths = np.array([len(p) for p in pieces], dtype=np.int64)
        return FeatureSplit(
            image_tokens=self.read_images(images),
            text_tokens=np.concatenate(pieces) if pieces else np.asarray(self.text_tokens[:0]),
            text_offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            labels=np.asarray(self.labels[indices]),
            meta=self.meta.iloc[indices].reset_index(drop=True),
            image_index=image_index.reshape(-1),
            text_index=text_index.reshape(-1),
        )

    # ------------------------------------------------------------------------------------ files
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


class FeatureDataset:
    """Map-style dataset over a :class:`FeatureSplit` for ``torch.utils.data.DataLoader``: items are row
    indices and :meth:`collate` builds the batch (pass it as ``collate_fn``)."""

    def __init__(self, features: FeatureSplit) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> int:
        return index

    def collate(self, indices: list[int]) -> dict[str, Any]:
        return collate_features(self.features, indices)


def collate_features(features: FeatureSplit, indices: Any) -> dict[str, Any]:
    """Batch dict: image (B, Li, Ei), image_mask (B, Li), text (B, Lmax, Et), text_mask, label, index.

    ``indices``: row numbers (list, numpy array or tensor). Features come back as float32 tensors
    (exactly the stored float16 values); text is zero-padded to the batch's longest text.
    """
    import torch

    idx = np.asarray(indices, dtype=np.int64)
    image = torch.from_numpy(features.image_rows(idx)).float()  # torch's fp16 → fp32 is vectorised
    text, lengths = features.text_rows(idx)
    text_mask = np.arange(text.shape[1])[None, :] < lengths[:, None]
    return {
        "image": image,
        "image_mask": torch.ones(image.shape[:2], dtype=torch.bool),
        "text": torch.from_numpy(text).float(),
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


def prefix_tokens(image_encoder: Any, text_encoder: Any) -> tuple[int, int]:
    """Leading summary tokens of the (image, text) sequences the encoders produce: a ViT's / BERT's
    [CLS] with all tokens kept, 1 for a single cls/mean token, 0 for CNN maps and pooled patches."""
    image_selection = getattr(image_encoder, "token_selection", "all")
    if image_selection == "all":
        image = int(getattr(image_encoder, "num_prefix_tokens", 0) or 0)
    else:
        image = 1 if image_selection in ("cls", "mean") else 0
    tokenizer = getattr(text_encoder, "tokenizer", None)
    text_selection = getattr(text_encoder, "token_selection", "all")
    text = 1 if text_selection != "all" or getattr(tokenizer, "cls_token", None) is not None else 0
    return image, text
