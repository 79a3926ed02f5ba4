"""The trainer's input interface: three splits that yield batch dicts (what ``train_run`` consumes).

:class:`FeatureData` (frozen mode) wraps three :class:`~fusionzoo.encoders.features.FeatureSplit` s.
To keep the training step cheap it materialises each split once as tensors (image tokens, text tokens
padded to the split's longest text, lengths) when that fits in ``memory_budget`` bytes, and then a
batch is two ``index_select`` calls plus a trim of the text padding to the batch's longest text — the
same tensors :func:`~fusionzoo.encoders.features.collate_features` builds, without its per-row Python
loop. Larger splits (GLAMI-1M) fall back to ``collate_features`` over the memory maps.

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

__all__ = ["FeatureData", "MaterialisedSplit", "TrainingData"]

SPLIT_NAMES = ("train", "val", "test")
DEFAULT_MEMORY_BUDGET = 3 * 1024**3


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


@dataclass
class MaterialisedSplit:
    """A split as tensors: image (N, Li, Ei), text (N, Lmax, Et) zero-padded, lengths (N,), labels."""

    image: Tensor
    text: Tensor
    lengths: Tensor
    labels: Tensor

    @classmethod
    def from_features(cls, features: FeatureSplit, dtype: torch.dtype = torch.float32) -> MaterialisedSplit:
        n = len(features)
        lengths = np.diff(np.asarray(features.text_offsets)).astype(np.int64)
        max_len = max(1, int(lengths.max()) if n else 1)
        text = torch.zeros(n, max_len, features.text_dim, dtype=dtype)
        tokens = torch.from_numpy(np.asarray(features.text_tokens, dtype=np.float32)).to(dtype)  # a copy
        if n and tokens.shape[0]:
            rows = torch.from_numpy(np.repeat(np.arange(n), lengths))
            starts = torch.from_numpy(np.repeat(np.asarray(features.text_offsets[:-1]), lengths))
            cols = torch.arange(tokens.shape[0]) - starts
            text[rows, cols] = tokens
        return cls(
            image=torch.from_numpy(np.array(features.image_tokens, dtype=np.float32)).to(dtype),
            text=text,
            lengths=torch.from_numpy(lengths),
            labels=torch.from_numpy(np.asarray(features.labels, dtype=np.int64)),
        )

    def batch(self, indices: Tensor) -> dict[str, Tensor]:
        lengths = self.lengths.index_select(0, indices)
        max_len = max(1, int(lengths.max())) if len(indices) else 1
        image = self.image.index_select(0, indices)
        text = self.text[:, :max_len].index_select(0, indices)
        return {
            "image": image.float(),
            "image_mask": torch.ones(image.shape[:2], dtype=torch.bool),
            "text": text.float(),
            "text_mask": torch.arange(max_len).unsqueeze(0) < lengths.unsqueeze(1),
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
    memory_budget: int = DEFAULT_MEMORY_BUDGET

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

    def _padded_bytes(self, features: FeatureSplit) -> int:
        lengths = features.text_lengths()
        max_len = int(lengths.max()) if len(lengths) else 1
        n = len(features)
        return 4 * n * (features.num_image_tokens * features.image_dim + max_len * features.text_dim)

    def materialised(self, split: str) -> MaterialisedSplit | None:
        """The split as tensors, built once, or ``None`` when it does not fit ``memory_budget``."""
        if split not in self._materialised:
            features = self.split(split)
            fits = self._padded_bytes(features) <= self.memory_budget
            self._materialised[split] = MaterialisedSplit.from_features(features) if fits else None
        return self._materialised[split]

    def batch(self, split: str, indices: Tensor) -> dict[str, Any]:
        dense = self.materialised(split)
        if dense is not None:
            return dense.batch(indices)
        return collate_features(self.split(split), indices.numpy())
