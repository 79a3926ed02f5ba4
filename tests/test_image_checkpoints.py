"""Full timm checkpoints (with their classifier, plain or wrapped) load as timm's pretrained path does."""

from __future__ import annotations

import argparse

import pytest
import torch

from fusionzoo.encoders.errors import EncoderError
from fusionzoo.encoders.image import create_image_encoder

VIT = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}


def _vit(num_classes: int = 5, **overrides):
    import timm

    return timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, num_classes=num_classes, **{**VIT, **overrides}
    )


def _same_tokens(encoder, model):
    pixels = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        expected = model.forward_features(pixels)
        if expected.ndim == 4:  # a CNN feature map (B, C, H, W) becomes (B, H·W, C) tokens
            expected = expected.flatten(2).transpose(1, 2)
        assert torch.equal(encoder.all_tokens(pixels), expected)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_full_checkpoint_with_its_classifier_loads(tmp_path, suffix):
    from safetensors.torch import save_file

    model = _vit()
    assert model.pretrained_cfg["classifier"] == "head" and "head.weight" in model.state_dict()
    path = tmp_path / f"full{suffix}"
    if suffix == ".pth":
        torch.save(model.state_dict(), path)
    else:
        save_file(model.state_dict(), str(path))
    encoder = create_image_encoder(f"timm:vit_tiny_patch16_224@{path}", model_kwargs=VIT)
    _same_tokens(encoder, model)
    assert encoder.identity()["weights"]["checkpoint"]["size"] == path.stat().st_size


@pytest.mark.parametrize("key", ["state_dict", "model"])
def test_a_wrapped_checkpoint_loads(tmp_path, key):
    model = _vit()
    path = tmp_path / "checkpoint.pth.tar"
    # as timm's train.py writes it: epoch, arch, args (a Namespace), state_dict, optimizer
    torch.save(
        {key: model.state_dict(), "epoch": 3, "arch": "vit_tiny", "args": argparse.Namespace(lr=0.1)}, path
    )
    encoder = create_image_encoder(f"timm:vit_tiny_patch16_224@{path}", model_kwargs=VIT)
    _same_tokens(encoder, model)


def test_a_cnn_checkpoint_with_its_fc_loads(tmp_path):
    import timm

    model = timm.create_model("resnet10t", pretrained=False, num_classes=5)
    assert model.pretrained_cfg["classifier"] == "fc"
    path = tmp_path / "resnet.pth"
    torch.save(model.state_dict(), path)
    encoder = create_image_encoder(f"timm:resnet10t@{path}", input_size=32)
    _same_tokens(encoder, model)


def test_any_other_mismatch_names_the_keys(tmp_path):
    deeper = tmp_path / "deeper.pth"
    torch.save(_vit(depth=3).state_dict(), deeper)
    with pytest.raises(EncoderError, match=r"unexpected key\(s\): blocks\.2\.") as info:
        create_image_encoder(f"timm:vit_tiny_patch16_224@{deeper}", model_kwargs=VIT)
    assert "deeper.pth" in str(info.value)

    partial = tmp_path / "partial.pth"
    state = _vit().state_dict()
    state.pop("norm.weight")
    torch.save(state, partial)
    with pytest.raises(EncoderError, match=r"missing key\(s\): norm\.weight"):
        create_image_encoder(f"timm:vit_tiny_patch16_224@{partial}", model_kwargs=VIT)

    wider = tmp_path / "wider.pth"
    torch.save(_vit(embed_dim=64).state_dict(), wider)
    with pytest.raises(EncoderError, match=r"does not fit.*size mismatch"):
        create_image_encoder(f"timm:vit_tiny_patch16_224@{wider}", model_kwargs=VIT)
