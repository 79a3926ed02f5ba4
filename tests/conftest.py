"""Shared pytest fixtures. Tests run offline: no hub downloads, tiny dimensions."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

# Tiny hyperparameters for the registry-wide contract suite; plugins not listed run with defaults.
TINY_HYPERPARAMETERS: dict[str, dict] = {
    "fluid": {"queries": 4, "layers": 1, "bottleneck_queries": 2},
    "shomr": {},
    "early_fusion": {"layers": 1},
    "qformer": {"queries": 4, "layers": 1},
    "transformer_concat": {"layers": 1},
    "moe": {"experts": 4, "top_k": 2},
}


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield
