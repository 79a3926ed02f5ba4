"""Reading raw dataset rows for the encoders: images through the model's transform, texts as strings.

The data package's ``ImageTextDataset`` is used when it is installed; :class:`FrameImageDataset` is the
same contract (``{"index", "image", "text", "label", "ok"}``, ``image=None``/``ok=False`` for an
unreadable file) for when it is not, and adds JPEG draft decoding (decode at a reduced scale when the
image is much larger than the model input).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import torch
from torch.utils.data import Dataset


def _open_rgb(path: str, target: tuple[int, int] | None) -> Any:
    from PIL import Image

    image = Image.open(path)
    if target is not None and image.format == "JPEG":
        # decode at 1/2, 1/4 or 1/8 scale when that is still at least the requested size
        image.draft("RGB", target)
    return image.convert("RGB")


class FrameImageDataset(Dataset):
    """Rows of a split frame: ``{"index", "image", "text", "label", "ok"}``."""

    def __init__(
        self,
        frame: pd.DataFrame,
        transform: Callable[[Any], torch.Tensor] | None,
        on_bad_image: str = "skip",
        draft_size: tuple[int, int] | None = None,
    ) -> None:
        self.paths = frame["image_path"].astype(str).tolist()
        self.texts = frame["text"].fillna("").astype(str).tolist()
        self.labels = frame["label"].astype(int).tolist()
        self.transform = transform
        self.on_bad_image = on_bad_image
        self.draft_size = draft_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            image = _open_rgb(self.paths[index], self.draft_size)
            pixels = self.transform(image) if self.transform is not None else image
            ok = True
        except (OSError, ValueError, SyntaxError):
            pixels, ok = None, False
        return {
            "index": index,
            "image": pixels,
            "text": self.texts[index],
            "label": self.labels[index],
            "ok": ok,
        }


def image_text_dataset(
    frame: pd.DataFrame, transform: Callable[[Any], torch.Tensor] | None, draft_size: tuple[int, int] | None
) -> Dataset:
    """The data package's ``ImageTextDataset`` if available, else :class:`FrameImageDataset`.

    Unreadable images come back as ``ok=False`` either way; the caller applies the bad-image policy.
    """
    try:
        from fusionzoo.data.images import ImageTextDataset
    except ImportError:
        return FrameImageDataset(frame, transform, "skip", draft_size)
    return ImageTextDataset(frame.reset_index(drop=True), transform, "skip")
