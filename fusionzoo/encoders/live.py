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
from fusionzoo.encoders.features import prefix_tokens
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
        """``raw``: pixels (B, 3, H, W), input_ids/attention_mask (B, L), label, index and optionally
        ``image_ok`` (B,) bool — a False row (unreadable image, zero pixels) gets an all-False image mask."""
        pixels = raw["pixels"]
        image = self.image_encoder(pixels)
        text, text_mask = self.text_encoder(raw["input_ids"], raw["attention_mask"])
        image_mask = torch.ones(image.shape[:2], dtype=torch.bool, device=image.device)
        if "image_ok" in raw:
            image_mask = image_mask & raw["image_ok"].to(image.device).bool()[:, None]
        return {
            "image": image.float(),
            "image_mask": image_mask,
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


def finetune_identity(
    splits: Any,
    image_encoder: ImageEncoder,
    text_encoder: TextEncoder,
    freeze_layers: int = 0,
    freeze_text_layers: int | None = None,
    augment: bool = False,
) -> dict[str, Any]:
    """What a finetune run's inputs depend on: the splits, the encoders' identities (weights,
    preprocessing, token selection), which layers are frozen and whether images are augmented."""
    return {
        "splits": {s: splits.split_fingerprint(s) for s in ("train", "val", "test")},
        "image": image_encoder.identity(),
        "text": text_encoder.identity(),
        "freeze": [freeze_layers, freeze_layers if freeze_text_layers is None else freeze_text_layers],
        "augment": augment,
    }


class LiveData:
    """Finetune-mode training data (the ``TrainingData`` interface of ``fusionzoo.train.inputs``).

    ``batch(split, indices)`` decodes the rows' images (a small thread pool; PIL releases the GIL)
    and tokenizes their texts. :meth:`make_encoder` returns a **fresh** :class:`LiveEncoders` — a copy
    of the pristine (pretrained or seeded) encoders with the configured layers frozen — that each run
    puts inside its model, trains with ``backbone_lr``, snapshots and checkpoints with the fusion and
    head; the pristine encoders are never trained, so runs never share weights. Rows whose image file
    is missing or not a JPEG/PNG are dropped up front (warned with their item ids, like the frozen
    cache); an image that still fails to decode is given zero pixels and an all-False image mask, so
    predictions stay aligned with ``labels(split)``.
    """

    def __init__(
        self,
        splits: Any,
        image_encoder: ImageEncoder,
        text_encoder: TextEncoder,
        *,
        freeze_layers: int = 0,
        freeze_text_layers: int | None = None,
        augment: bool = False,
        name: str | None = None,
        threads: int = 4,
        fingerprint: str | None = None,
    ) -> None:
        import hashlib
        import json
        import warnings

        from fusionzoo.data.base import DataWarning
        from fusionzoo.data.images import check_image_files

        self._pristine = (image_encoder, text_encoder)
        self._freeze = (freeze_layers, freeze_layers if freeze_text_layers is None else freeze_text_layers)
        self.frames: dict[str, pd.DataFrame] = {}
        for split in ("train", "val", "test"):
            frame = splits.split(split).reset_index(drop=True)
            problems = check_image_files(frame)
            if len(problems):
                ids = problems["item_id"].astype(str).tolist()
                warnings.warn(
                    f"{split}: dropped {len(ids)} row(s) whose image file is unusable, first item_ids: "
                    f"{', '.join(ids[:5])}",
                    DataWarning,
                    stacklevel=2,
                )
                frame = frame[~frame["item_id"].isin(problems["item_id"])].reset_index(drop=True)
            self.frames[split] = frame
        self.datasets = {
            split: raw_dataset(frame, image_encoder, augment=augment and split == "train")
            for split, frame in self.frames.items()
        }
        self.collate = RawCollate(text_encoder)
        self.num_classes = splits.num_classes
        self.classes = list(splits.classes)
        self.name = name or splits.name
        self.image_dim = image_encoder.out_dim
        self.text_dim = text_encoder.out_dim
        self.num_image_tokens = image_encoder.num_tokens
        self.image_size = tuple(image_encoder.data_config["input_size"])
        identity = finetune_identity(
            splits, image_encoder, text_encoder, freeze_layers, freeze_text_layers, augment
        )
        self.fingerprint = (
            fingerprint
            or hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
        )
        self.image_prefix_tokens, self.text_prefix_tokens = prefix_tokens(image_encoder, text_encoder)
        self._pool: Any = None
        self._threads = threads

    def make_encoder(self) -> LiveEncoders:
        """A fresh trainable copy of the pristine encoders (one per run)."""
        import copy

        image, text = (copy.deepcopy(m) for m in self._pristine)
        return LiveEncoders(
            image, text, freeze_image_layers=self._freeze[0], freeze_text_layers=self._freeze[1]
        )

    def size(self, split: str) -> int:
        return len(self.frames[split])

    def labels(self, split: str) -> Any:
        import numpy as np

        return self.frames[split]["label"].to_numpy(dtype=np.int64)

    def meta(self, split: str) -> pd.DataFrame:
        frame = self.frames[split]
        return frame[[c for c in ("item_id", "geo", "label_source", "is_human", "label") if c in frame]]

    def batch(self, split: str, indices: torch.Tensor) -> dict[str, Any]:
        from concurrent.futures import ThreadPoolExecutor

        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._threads)
        dataset = self.datasets[split]
        rows = [int(i) for i in indices]
        items = list(self._pool.map(dataset.__getitem__, rows))
        ok = [bool(item["ok"]) and item["image"] is not None for item in items]
        zeros = torch.zeros(self.image_size)
        pixels = torch.stack([item["image"] if flag else zeros for item, flag in zip(items, ok, strict=True)])
        tokens = tokenize_texts(
            self.collate.tokenizer, self.collate.max_length, [item["text"] for item in items]
        )
        return {
            "pixels": pixels,
            "input_ids": tokens.input_ids,
            "attention_mask": tokens.attention_mask,
            "image_ok": torch.tensor(ok, dtype=torch.bool),
            "label": torch.tensor([int(item["label"]) for item in items], dtype=torch.long),
            "index": torch.tensor(rows, dtype=torch.long),
        }
