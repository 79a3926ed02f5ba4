"""Tiny encoders saved to folders, loadable offline by path (``timm:/dir``, ``hf:/dir``).

:func:`save_tiny_image_model` writes a tiny timm ViT with ``save_for_hf``; :func:`save_tiny_text_model`
a tiny ``BertModel`` and a WordPiece tokenizer trained on given texts, with ``save_pretrained``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
