"""Shared pytest fixtures. Tests run offline: no hub downloads, tiny dimensions."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield


@pytest.fixture
def clean_registry():
    """Unregister whatever a test registers (local plugin files, throw-away classes), every kind."""
    from fusionzoo.registry import REGISTRIES

    before = {kind: set(reg.names()) for kind, reg in REGISTRIES.items()}
    yield
    for kind, reg in REGISTRIES.items():
        for name in set(reg.names()) - before[kind]:
            reg.unregister(name)


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory):
    """Folders of two tiny ViTs and a tiny BERT (``fusionzoo.testing.tiny_encoders.save_tiny_models``)."""
    from fusionzoo.testing.tiny_encoders import save_tiny_models

    return save_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def tiny_models(tiny_model_dirs):
    """``(image_encoder, text_encoder)`` loaded from :func:`tiny_model_dirs` (frozen, eval mode)."""
    from fusionzoo.testing.tiny_encoders import load_tiny_encoders

    return load_tiny_encoders(tiny_model_dirs)
