"""Checkpoints of a run: ``model.safetensors`` (the whole model, encoder included in finetune mode)
plus ``config.json`` (the RunConfig and the shapes needed to rebuild the model); never pickle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_model, save_model
from torch import nn

from fusionzoo.io import atomic_output, atomic_write
from fusionzoo.train.config import RunConfig
from fusionzoo.train.model import FusionModel

__all__ = ["CHECKPOINT_CONFIG", "CHECKPOINT_WEIGHTS", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_WEIGHTS = "model.safetensors"
CHECKPOINT_CONFIG = "config.json"


def save_checkpoint(
    directory: str | Path, model: FusionModel, config: RunConfig, info: dict[str, Any]
) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into ``directory``, each atomically (weights first)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_output(directory / CHECKPOINT_WEIGHTS) as weights:
        save_model(model, str(weights), metadata={"format": "pt", "fusionzoo": "FusionModel"})
    payload = {"run_config": config.to_dict(), **info}
    atomic_write(directory / CHECKPOINT_CONFIG, json.dumps(payload, indent=2, sort_keys=True, default=float))
    return directory


def load_checkpoint(
    directory: str | Path, device: str = "cpu", encoder: nn.Module | None = None
) -> tuple[FusionModel, RunConfig, dict[str, Any]]:
    """Rebuild the model of a checkpoint written by :func:`save_checkpoint`; return (model, config, info).

    A finetune checkpoint holds the encoder's weights too: pass a module of the same architecture as
    ``encoder`` (e.g. ``data.make_encoder()``) and its weights are loaded from the checkpoint.
    """
    directory = Path(directory)
    info = json.loads((directory / CHECKPOINT_CONFIG).read_text())
    config = RunConfig.from_dict(info["run_config"])
    shapes = info["model"]
    if shapes.get("encoder") and encoder is None:
        raise ValueError(
            f"checkpoint {directory} is a finetune run (its encoder is part of the model): pass an encoder "
            "module of the same architecture, e.g. the run's data.make_encoder()"
        )
    model = FusionModel(
        shapes["fusion"],
        shapes["head"],
        image_dim=shapes["image_dim"],
        text_dim=shapes["text_dim"],
        dim=config.dim,
        num_classes=shapes["num_classes"],
        num_image_tokens=shapes["num_image_tokens"],
        modality_embeddings=config.modality_embeddings,
        position_embeddings=config.position_embeddings,
        max_positions=config.max_positions,
        dropout=config.dropout,
        encoder=encoder if shapes.get("encoder") else None,
        image_prefix_tokens=int(shapes.get("image_prefix_tokens", 0)),
        text_prefix_tokens=int(shapes.get("text_prefix_tokens", 0)),
    )
    load_model(model, str(directory / CHECKPOINT_WEIGHTS), device=device)
    model.eval()
    return model, config, info
