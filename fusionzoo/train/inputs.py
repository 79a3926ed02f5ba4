"""The trainer's input interface: three splits that yield batch dicts (what ``train_run`` consumes).

:class:`FeatureData` (frozen mode) wraps three :class:`~fusionzoo.encoders.features.FeatureSplit` s.
To keep the training step cheap each split whose cached arrays fit the memory budget is read into RAM
once (:class:`MaterialisedSplit`: the distinct images and texts as float16 tensors, as stored, plus the
per-row indices) and shared by every run that uses this ``FeatureData`` (a bench or a tune worker builds one
per dataset and process). A batch is then gathered from RAM and converted to float32 — exactly the
values :func:`~fusionzoo.encoders.features.collate_features` reads from the files. Splits that do not
fit keep the bounded-memory path: ``collate_features`` with ``pread`` of each batch's rows.

The budget (``memory_budget``; ``None``: :func:`default_memory_budget`, half of the RAM available when
the split is first read) is compared with the split's stored bytes.

Finetune mode uses the same interface; its ``make_encoder()`` returns a fresh encoder module that the
run's model owns (the batch dict then carries whatever that module consumes and ``encoder(batch)``
returns the token batch; see :mod:`fusionzoo.encoders.live`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from fusionzoo.encoders.features import FeatureSplit, collate_features
from fusionzoo.io import available_memory

__all__ = ["FeatureData", "MaterialisedSplit", "TrainingData", "available_memory", "default_memory_budget"]

SPLIT_NAMES = ("train", "val", "test")
FALLBACK_MEMORY_BUDGET = 3 * 1024**3  # when the available RAM cannot be read


class TrainingData:
    """Interface: ``size(split)``, ``labels(split)``, ``meta(split)``, ``batch(split, indices)``.

    Attributes: ``num_classes``, ``image_dim``, ``text_dim``, ``num_image_tokens``, ``classes``,
    ``name`` (dataset name), ``fingerprint``. ``make_encoder()`` returns ``None`` in frozen mode; in
    finetune mode a fresh ``nn.Module`` per call, mapping the batch dict to ``{"image", "image_mask",
    "text", "text_mask"}`` (each run's model owns its own copy).
    """

    num_classes: int
    image_dim: int
    text_dim: int
    num_image_tokens: int
    classes: list[str]
    name: str = "features"
    fingerprint: str = ""
    image_prefix_tokens: int = 0  # leading summary tokens ([CLS]) of each modality's sequence
    text_prefix_tokens: int = 0

    def make_encoder(self) -> nn.Module | None:
        """The encoder module a run's model owns (``None``: the batches already hold tokens)."""
        return None

    def size(self, split: str) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def labels(self, split: str) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def meta(self, split: str) -> pd.DataFrame | None:  # pragma: no cover - interface
        raise NotImplementedError

    def batch(self, split: str, indices: Tensor) -> dict[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError


def default_memory_budget() -> int:
    """Half of :func:`available_memory` (:data:`FALLBACK_MEMORY_BUDGET` when unknown)."""
    available = available_memory()
    return FALLBACK_MEMORY_BUDGET if available is None else available // 2


@dataclass
class MaterialisedSplit:
    """A split read into RAM once, as stored: the distinct images (Ui, Li, Ei) and the distinct texts'
    tokens (T, Et) in float16 (a zero row appended for padding), the per-row indices and the labels.

    A batch is ``index_select`` of the rows' images and a gather of their texts, then ``.float()``:
    the float32 values :func:`collate_features` gives, with no padding held in memory.
    """

    image: Tensor
    image_index: Tensor
    text: Tensor
    text_starts: Tensor
    text_lengths: Tensor
    text_index: Tensor
    labels: Tensor

    @classmethod
    def from_features(cls, features: FeatureSplit) -> MaterialisedSplit:
        memory = features.in_memory()
        text = np.concatenate([memory.text_tokens, np.zeros((1, memory.text_dim), memory.text_tokens.dtype)])
        return cls(
            image=torch.from_numpy(memory.image_tokens),
            image_index=torch.from_numpy(memory.image_index),
            text=torch.from_numpy(text),
            text_starts=torch.from_numpy(memory.text_offsets[:-1].copy()),
            text_lengths=torch.from_numpy(memory.distinct_text_lengths()),
            text_index=torch.from_numpy(memory.text_index),
            labels=torch.from_numpy(np.asarray(memory.labels, dtype=np.int64)),
        )

    @property
    def bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.image, self.text))

    def batch(self, indices: Tensor) -> dict[str, Tensor]:
        image = self.image.index_select(0, self.image_index.index_select(0, indices))
        texts = self.text_index.index_select(0, indices)
        lengths = self.text_lengths.index_select(0, texts)
        max_len = max(1, int(lengths.max())) if len(indices) else 1
        positions = torch.arange(max_len)
        mask = positions.unsqueeze(0) < lengths.unsqueeze(1)
        padding_row = self.text.shape[0] - 1
        rows = torch.where(
            mask, self.text_starts.index_select(0, texts).unsqueeze(1) + positions, padding_row
        )
        return {
            "image": image.float(),
            "image_mask": torch.ones(image.shape[:2], dtype=torch.bool),
            "text": self.text[rows].float(),
            "text_mask": mask,
            "label": self.labels.index_select(0, indices),
            "index": indices,
        }


@dataclass
class FeatureData(TrainingData):
    """Frozen-mode training data: cached token features of the three splits."""

    train: FeatureSplit
    val: FeatureSplit
    test: FeatureSplit
    num_classes: int
    classes: list[str] = field(default_factory=list)
    name: str = "features"
    fingerprint: str = ""
    memory_budget: int | None = None  # bytes a split may take in RAM; None: default_memory_budget()
    image_prefix_tokens: int = 0  # leading summary tokens of the encoders' sequences (prefix_tokens)
    text_prefix_tokens: int = 0

    def __post_init__(self) -> None:
        if not self.classes:
            self.classes = [str(i) for i in range(self.num_classes)]
        dims = {(s.image_dim, s.text_dim, s.num_image_tokens) for s in (self.train, self.val, self.test)}
        if len(dims) != 1:
            raise ValueError(
                f"train/val/test features disagree on (image dim, text dim, image tokens): {dims}"
            )
        for split in SPLIT_NAMES:
            labels = np.asarray(self.split(split).labels)
            if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise ValueError(f"{split} labels must lie in 0..{self.num_classes - 1}")
        if len(self.train) == 0:
            raise ValueError("the training split is empty")
        self.image_dim, self.text_dim, self.num_image_tokens = dims.pop()
        self._materialised: dict[str, MaterialisedSplit | None] = {}

    def split(self, name: str) -> FeatureSplit:
        if name not in SPLIT_NAMES:
            raise ValueError(f"unknown split '{name}'; expected one of {', '.join(SPLIT_NAMES)}")
        return getattr(self, name)

    def size(self, split: str) -> int:
        return len(self.split(split))

    def labels(self, split: str) -> np.ndarray:
        return np.asarray(self.split(split).labels, dtype=np.int64)

    def meta(self, split: str) -> pd.DataFrame | None:
        return self.split(split).meta

    def materialised(self, split: str) -> MaterialisedSplit | None:
        """The split in RAM, read once, or ``None`` when its stored arrays do not fit the budget."""
        if split not in self._materialised:
            features = self.split(split)
            budget = default_memory_budget() if self.memory_budget is None else self.memory_budget
            fits = features.stored_bytes() <= budget
            self._materialised[split] = MaterialisedSplit.from_features(features) if fits else None
        return self._materialised[split]

    def batch(self, split: str, indices: Tensor) -> dict[str, Any]:
        dense = self.materialised(split)
        if dense is not None:
            return dense.batch(indices)
        return collate_features(self.split(split), indices.numpy())
