"""Tiny encoders saved to folders, loadable offline by path (``timm:/dir``, ``hf:/dir``).

:func:`save_tiny_image_model` writes a tiny timm ViT with ``save_for_hf``; :func:`save_tiny_text_model`
a tiny ``BertModel`` and a WordPiece tokenizer trained on given texts, with ``save_pretrained``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


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


def save_tiny_models(root: str | Path) -> dict[str, Path]:
    """``{"image", "image_other", "text"}``: two tiny ViTs (seeds 0 and 1) and a tiny BERT whose
    tokenizer is counted on a 40-row ``write_tiny_glami`` set, saved under ``root``."""
    from fusionzoo.testing.tiny_splits import splits_from_csv, write_tiny_glami

    root = Path(root)
    texts = splits_from_csv(write_tiny_glami(root / "vocab", n=40)).train["text"].tolist()
    return {
        "image": save_tiny_image_model(root / "vit"),
        "image_other": save_tiny_image_model(root / "vit_other", seed=1),
        "text": save_tiny_text_model(root / "bert", texts),
    }


def load_tiny_encoders(
    models: dict[str, Path], image_key: str = "image", max_length: int = 32
) -> tuple[Any, Any]:
    """The encoders of :func:`save_tiny_models`, loaded by path like any user model."""
    from fusionzoo.encoders.image import create_image_encoder
    from fusionzoo.encoders.text import create_text_encoder

    image = create_image_encoder(f"timm:{models[image_key]}")
    return image, create_text_encoder(f"hf:{models['text']}", max_length=max_length)


def encode_quietly(
    splits: Any, encoders: tuple[Any, Any], cache: str | Path, **options: Any
) -> tuple[dict[str, Any], str]:
    """``(encode_splits(...), what it printed)`` with small test defaults (batch 4, chunks of 8, no
    loader workers, no progress bars)."""
    import io

    from rich.console import Console

    from fusionzoo.encoders.cache import encode_splits

    out = Console(file=io.StringIO(), width=400, soft_wrap=True)
    options = {"batch_size": 4, "chunk_rows": 8, "num_workers": 0, "progress": False, **options}
    features = encode_splits(splits, *encoders, cache, console=out, **options)
    return features, out.file.getvalue()
