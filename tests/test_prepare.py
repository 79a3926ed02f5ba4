"""bench/tune data preparation: encoder options reach the encoders (``--no-pretrained`` included)."""

from __future__ import annotations

import pytest

from fusionzoo.encoders.errors import WeightsUnavailableError
from fusionzoo.prepare import DataOptions, encoders_for
from fusionzoo.testing.tiny_encoders import save_tiny_text_model


@pytest.fixture(scope="module")
def tiny_text_dir(tmp_path_factory):
    return save_tiny_text_model(tmp_path_factory.mktemp("bert"), ["red cotton shirt", "blue wool coat"])


def test_no_pretrained_builds_a_hub_model_offline(tmp_path, tiny_text_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    options = DataOptions(
        dataset="glami1m",
        data_dir=str(tmp_path),
        encoders={"image": "timm:test_vit", "text": f"hf:{tiny_text_dir}", "pretrained": False},
    )
    image, text = encoders_for(options, None)
    assert image.out_dim > 0 and text.out_dim > 0


def test_pretrained_hub_weights_offline_is_a_clear_error(tmp_path, tiny_text_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    options = DataOptions(
        dataset="glami1m",
        data_dir=str(tmp_path),
        encoders={"image": "timm:test_vit", "text": f"hf:{tiny_text_dir}", "pretrained": True},
    )
    with pytest.raises(WeightsUnavailableError, match="--no-pretrained"):
        encoders_for(options, None)
