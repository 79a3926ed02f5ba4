"""What every dataset loader returns: three splits as tidy frames, the class list and a fingerprint.

Every split frame has one row per sample and the columns in :data:`COLUMNS`:

    item_id (str)        unique within the dataset
    image_path (str)     absolute path of the image file
    text (str)           the text the text encoder sees (GLAMI: name + description)
    label (int)          0..C-1, index into ``DatasetSplits.classes``
    geo (str)            language/market code ("cz", "sk", ...; "" when unknown)
    label_source (str)   GLAMI's label_source, "unknown" where missing
    is_human (bool)      label_source in admin / quality-check / custom-tag
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fusionzoo.errors import FusionzooError

COLUMNS = ("item_id", "image_path", "text", "label", "geo", "label_source", "is_human")
SPLITS = ("train", "val", "test")
HUMAN_LABEL_SOURCES = frozenset({"admin", "quality-check", "custom-tag"})
BAD_IMAGE_POLICIES = ("skip", "fail")


class DataError(FusionzooError, ValueError):
    """Input data that cannot be loaded as asked; the message names the file/row and the fix."""


class DataWarning(UserWarning):
    """Something in the data was skipped, replaced or dropped; the message says what and how many."""


@dataclass
class DatasetSplits:
    """A loaded dataset: ``train``/``val``/``test`` frames with :data:`COLUMNS`, classes, identity."""

    name: str
    root: Path
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    classes: list[str]
    fingerprint: str
    info: dict[str, Any] = field(default_factory=dict)  # loader statistics/warnings shown to the user

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, name: str) -> pd.DataFrame:
        if name not in SPLITS:
            raise ValueError(f"unknown split '{name}'; expected one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def split_fingerprint(self, name: str) -> str:
        """Identity of one split: the dataset fingerprint plus the split's item ids, in order."""
        digest = hashlib.sha256(self.fingerprint.encode())
        digest.update(name.encode())
        digest.update("\n".join(self.split(name)["item_id"].astype(str)).encode())
        return digest.hexdigest()[:16]


def fingerprint_of(payload: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable description (files, sizes, mtimes, options)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
