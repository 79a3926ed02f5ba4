"""Finetune mode: the encoders inside the training graph, on raw batches (pixels + token ids).

:class:`LiveEncoders` turns a raw batch into the same batch dict that
:func:`fusionzoo.encoders.features.collate_features` builds from the cache (``image``, ``image_mask``,
``text``, ``text_mask``, ``label``, ``index``), so one FusionModel serves both modes::

    live = LiveEncoders(image_encoder, text_encoder, freeze_image_layers=6, freeze_text_layers=6)
    dataset = raw_dataset(splits.train, live.image_encoder, augment=True)
    loader = DataLoader(dataset, batch_size=32, shuffle=True, collate_fn=RawCollate(live.text_encoder))
    optimizer = AdamW([
        {"params": live.backbone_parameters(), "lr": 2e-5},   # the encoders
        {"params": fusion_and_head.parameters(), "lr": 1e-3},
    ])
    for raw in loader:
        batch = live(raw)            # image (B, Li, Ei), text (B, Lt, Et) + masks, label, index
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from fusionzoo.encoders.errors import EncoderError
from fusionzoo.encoders.image import ImageEncoder
from fusionzoo.encoders.rows import image_text_dataset
from fusionzoo.encoders.text import TextEncoder, tokenize_texts


class LiveEncoders(nn.Module):
    """Image + text encoders run per batch (finetune mode), with optional freezing of the first layers.

    ``freeze_*_layers``: 0 trains everything, N freezes the stem/embeddings and the first N blocks,
    -1 freezes the whole encoder (it then stays in eval mode, e.g. BatchNorm statistics are kept).
    """

    def __init__(
        self,
        image_encoder: ImageEncoder,
        text_encoder: TextEncoder,
        *,
        freeze_image_layers: int = 0,
        freeze_text_layers: int = 0,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        for param in self.parameters():
            param.requires_grad_(True)
        if freeze_image_layers:
            image_encoder.freeze_layers(freeze_image_layers)
        if freeze_text_layers:
            text_encoder.freeze_layers(freeze_text_layers)

    @property
    def image_dim(self) -> int:
        return self.image_encoder.out_dim

    @property
    def text_dim(self) -> int:
        return self.text_encoder.out_dim

    @property
    def num_image_tokens(self) -> int:
        return self.image_encoder.num_tokens

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The encoders' trainable parameters (give them their own, usually smaller, learning rate)."""
        return [p for p in self.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> LiveEncoders:
        super().train(mode)
        for encoder in (self.image_encoder, self.text_encoder):
            if not any(p.requires_grad for p in encoder.parameters()):
                encoder.eval()
        return self

    def forward(self, raw: dict[str, Any]) -> dict[str, torch.Tensor]:
        pixels = raw["pixels"]
        image = self.image_encoder(pixels)
        text, text_mask = self.text_encoder(raw["input_ids"], raw["attention_mask"])
        return {
            "image": image.float(),
            "image_mask": torch.ones(image.shape[:2], dtype=torch.bool, device=image.device),
            "text": text.float(),
            "text_mask": text_mask.bool(),
            "label": raw["label"],
            "index": raw["index"],
        }


def raw_dataset(frame: pd.DataFrame, image_encoder: ImageEncoder, *, augment: bool = False) -> Dataset:
    """Raw items of a split (``{"index", "image", "text", "label", "ok"}``) with the model's transform.

    ``augment=True`` uses timm's training transform for the model (random resized crop, flip, ...).
    """
    transform = image_encoder.transform
    if augment:
        import timm.data

        transform = timm.data.create_transform(**image_encoder.data_config, is_training=True)
    return image_text_dataset(frame.reset_index(drop=True), transform)


class RawCollate:
    """Collate raw items into ``{"pixels", "input_ids", "attention_mask", "label", "index"}``.

    Items with ``ok=False`` (unreadable image) are dropped and their rows listed in the batch's
    ``dropped`` (``on_bad_image="skip"``; the trainer counts and warns) or raise (``"fail"``); a batch
    with no readable image at all collates to ``None`` (skip it). Text is tokenized per batch, padded
    to the longest. Picklable (holds the tokenizer, not the model), so it runs in DataLoader workers.
    """

    def __init__(self, text_encoder: TextEncoder, on_bad_image: str = "skip") -> None:
        self.tokenizer = text_encoder.tokenizer
        self.max_length = text_encoder.max_length
        self.on_bad_image = on_bad_image

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any] | None:
        good = [item for item in items if item["ok"] and item["image"] is not None]
        bad = [int(item["index"]) for item in items if not (item["ok"] and item["image"] is not None)]
        if bad and self.on_bad_image == "fail":
            raise EncoderError(f"unreadable image(s) at rows {bad[:5]}; fix them or use on_bad_image='skip'")
        if not good:
            return None
        tokens = tokenize_texts(self.tokenizer, self.max_length, [item["text"] for item in good])
        return {
            "pixels": torch.stack([item["image"] for item in good]),
            "input_ids": tokens.input_ids,
            "attention_mask": tokens.attention_mask,
            "label": torch.tensor([int(item["label"]) for item in good], dtype=torch.long),
            "index": torch.tensor([int(item["index"]) for item in good], dtype=torch.long),
            "truncated": tokens.truncated,
            "dropped": bad,
        }
