"""Raw dataset rows for the encoders: the data package's ``ImageTextDataset`` with a model's transform.

Items are ``{"index", "image", "text", "label", "ok", ...}``; an unreadable image comes back as
``image=None``/``ok=False`` and the caller (cache writer, :class:`~fusionzoo.encoders.live.RawCollate`)
applies the bad-image policy. JPEGs are decoded in draft mode (reduced scale) when the transform's
target size allows it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import torch
from torch.utils.data import Dataset


def image_text_dataset(frame: pd.DataFrame, transform: Callable[[Any], torch.Tensor] | None) -> Dataset:
    """The split's rows as an ``ImageTextDataset`` that never raises on a bad image (policy applied later)."""
    from fusionzoo.data.images import ImageTextDataset

    return ImageTextDataset(frame.reset_index(drop=True), transform, "skip")
