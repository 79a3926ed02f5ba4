"""Tiny offline fixtures for tests of anything that consumes encoders or the feature cache.

- :func:`tiny_glami_splits`: a GLAMI-format :class:`DatasetSplits` (the columns of
  ``fusionzoo.data.base.COLUMNS``) with small JPEGs written by PIL, labels determined by the image's
  colour and a material word in the text, plus optional unreadable images;
- :func:`save_tiny_image_model` / :func:`save_tiny_text_model`: a tiny timm ViT saved with
  ``save_for_hf`` and a tiny ``BertModel`` + WordPiece tokenizer saved with ``save_pretrained``,
  loadable by path (``timm:/dir``, ``hf:/dir``) with no network.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fusionzoo.data.base import DatasetSplits, fingerprint_of

COLOURS = ((220, 40, 40), (40, 190, 60), (50, 70, 220), (230, 210, 40))
MATERIALS = ("cotton", "leather", "wool", "silk")


def write_tiny_glami(
    root: str | Path, n: int = 48, seed: int = 0, bad: Sequence[int] = (), image_size: int = 32
) -> Path:
    """Write ``data.csv`` (COLUMNS) and ``images/<i>.jpg`` under ``root``; returns the CSV path."""
    from PIL import Image

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        colour, material = int(rng.integers(len(COLOURS))), int(rng.integers(len(MATERIALS)))
        path = root / "images" / f"{i}.jpg"
        if i in bad:
            path.write_bytes(b"this is not a jpeg")
        else:
            pixels = np.clip(
                np.array(COLOURS[colour])[None, None, :] + rng.normal(0, 12, (image_size, image_size, 3)),
                0,
                255,
            ).astype(np.uint8)
            Image.fromarray(pixels).save(path, quality=90)
        words = " ".join(
            rng.choice(["nice", "new", "shirt", "sale", "summer", "size"], int(rng.integers(1, 12)))
        )
        rows.append(
            {
                "item_id": f"item{i}",
                "image_path": str(path.resolve()),
                "text": f"{MATERIALS[material]} {words}",
                "label": (colour + 2 * material) % 4,
                "geo": ("cz", "sk", "ro")[i % 3],
                "label_source": "admin" if i % 4 else "unknown",
                "is_human": bool(i % 4),
            }
        )
    csv = root / "data.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def splits_from_csv(csv: str | Path, name: str = "tiny") -> DatasetSplits:
    """Read a :func:`write_tiny_glami` CSV as train/val/test (60/20/20 by row order).

    The fingerprint covers the CSV's path, size, mtime and content hash, like the real loaders.
    """
    csv = Path(csv)
    frame = pd.read_csv(csv, dtype={"item_id": str}, keep_default_na=False)
    frame["is_human"] = frame["is_human"].astype(str).str.lower().eq("true")
    stat = csv.stat()
    digest = hashlib.sha256(csv.read_bytes()).hexdigest()
    fingerprint = fingerprint_of(
        {"csv": str(csv), "size": stat.st_size, "mtime": stat.st_mtime_ns, "sha": digest}
    )
    n = len(frame)
    train_end, val_end = n * 6 // 10, n * 8 // 10
    return DatasetSplits(
        name=name,
        root=csv.parent,
        train=frame.iloc[:train_end].reset_index(drop=True),
        val=frame.iloc[train_end:val_end].reset_index(drop=True),
        test=frame.iloc[val_end:].reset_index(drop=True),
        classes=[f"class{i}" for i in range(4)],
        fingerprint=fingerprint,
    )


def tiny_glami_splits(root: str | Path, n: int = 48, seed: int = 0, bad: Sequence[int] = ()) -> DatasetSplits:
    return splits_from_csv(write_tiny_glami(root, n, seed, bad))


def save_tiny_image_model(folder: str | Path, seed: int = 0, image_size: int = 32) -> Path:
    """A 2-block, 32-wide timm ViT saved with ``save_for_hf`` (config.json + model.safetensors)."""
    import timm
    from timm.models import save_for_hf

    args = {"img_size": image_size, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, **args)
    finally:
        torch.random.set_rng_state(state)
    save_for_hf(
        model,
        str(folder),
        model_args=args,
        safe_serialization=True,
        data_config={"input_size": [3, image_size, image_size], "crop_pct": 1.0},
    )
    return Path(folder)


def save_tiny_text_model(folder: str | Path, texts: Sequence[str], seed: int = 0, layers: int = 2) -> Path:
    """A 32-wide ``BertModel`` and a WordPiece tokenizer trained on ``texts``, via ``save_pretrained``."""
    from transformers import BertConfig, BertModel

    from fusionzoo.encoders.defaults import train_wordpiece_tokenizer

    recipe = {
        "tokenizer": {"kind": "wordpiece", "vocab_size": 200, "min_frequency": 1, "lowercase": True},
        "config": {"max_position_embeddings": 64},
    }
    tokenizer = train_wordpiece_tokenizer(list(texts), recipe)
    tokenizer.save_pretrained(str(folder))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
    )
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = BertModel(config)
    finally:
        torch.random.set_rng_state(state)
    model.save_pretrained(str(folder))
    return Path(folder)
