"""Unimodal baselines build, run and count only the projection of the modality they read."""

from __future__ import annotations

import pytest
import torch

from fusionzoo import registry
from fusionzoo.train.model import FusionModel, ModalityProjection, count_parameters

IMAGE_DIM, TEXT_DIM, D, C = 12, 10, 8, 3


def _model(fusion: str, **options) -> FusionModel:
    return FusionModel(
        fusion,
        "mlp",
        image_dim=IMAGE_DIM,
        text_dim=TEXT_DIM,
        dim=D,
        num_classes=C,
        num_image_tokens=4,
        **options,
    )


@pytest.mark.parametrize(
    ("fusion", "used", "unused", "in_dim"),
    [("image_only", "image", "text", IMAGE_DIM), ("text_only", "text", "image", TEXT_DIM)],
)
def test_a_unimodal_model_has_no_parameters_of_the_other_modality(fusion, used, unused, in_dim):
    model = _model(fusion)
    assert registry.get_fusion_class(fusion).modalities == (used,)
    assert getattr(model, f"{unused}_proj") is None
    assert not any(name.startswith(f"{unused}_proj") for name, _ in model.named_parameters())
    projection = ModalityProjection(in_dim, D, True, 0, 0.0)
    expected = (
        count_parameters(projection)
        + count_parameters(registry.create_fusion(fusion, D))
        + count_parameters(registry.create_head("mlp", D, C))
    )
    assert count_parameters(model) == expected


def test_the_unused_modality_reaches_the_fusion_as_a_missing_modality():
    model = _model("image_only").eval()
    seen = {}

    def hook(module, args, output):
        seen["text"], seen["text_mask"] = args[1], args[3]

    model.fusion.register_forward_hook(hook)
    image, text = torch.randn(2, 4, IMAGE_DIM), torch.randn(2, 5, TEXT_DIM)
    out = model(image, text, None, torch.ones(2, 5, dtype=torch.bool), check=True)
    assert out.logits.shape == (2, C)
    assert seen["text"].shape == (2, 1, D) and not seen["text"].any()
    assert seen["text_mask"].shape == (2, 1) and not seen["text_mask"].any()
    # the text never matters
    again = model(image, torch.randn(2, 7, TEXT_DIM), None, None)
    assert torch.equal(out.logits, again.logits)


def test_fusions_that_read_both_modalities_keep_both_projections():
    assert registry.get_fusion_class("concat_mlp").modalities == ("image", "text")
    model = _model("concat_mlp")
    assert model.image_proj is not None and model.text_proj is not None


def test_parameter_counts_at_d768_exclude_the_unused_projection():
    full = FusionModel(
        "image_only", "mlp", image_dim=768, text_dim=768, dim=768, num_classes=191, num_image_tokens=197
    )
    assert not any(name.startswith("text_proj") for name, _ in full.named_parameters())
    assert count_parameters(full) == count_parameters(full.image_proj) + count_parameters(
        full.fusion
    ) + count_parameters(full.head)
