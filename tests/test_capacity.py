"""Capacity-matched baselines: a baseline's size knob is chosen so its params match a target ±10%."""

from __future__ import annotations

import pytest

from fusionzoo import registry
from fusionzoo.bench.capacity import match_capacity, model_parameters
from fusionzoo.train.model import FusionModel, count_parameters

SHAPES = {"image_dim": 24, "text_dim": 20, "dim": 16, "num_classes": 7, "num_image_tokens": 5}


def test_model_parameters_counts_like_the_leaderboard():
    real = FusionModel("qformer:queries=4,layers=1,heads=2", "mlp", **SHAPES)
    assert model_parameters("qformer:queries=4,layers=1,heads=2", "mlp", **SHAPES) == count_parameters(real)
    assert model_parameters("fluid:queries=4,layers=1,heads=2", **SHAPES) == count_parameters(
        FusionModel("fluid:queries=4,layers=1,heads=2", "moe", **SHAPES)
    )


@pytest.mark.parametrize(
    "baseline", ["early_fusion:heads=2", "qformer:queries=4,heads=2", "concat_mlp", "cross_attention:heads=2"]
)
def test_a_matched_baseline_is_within_ten_percent_of_the_target(baseline):
    target = model_parameters("fluid:queries=4,layers=4,heads=2", "moe", **SHAPES)
    assert model_parameters(baseline, **SHAPES) < 0.8 * target  # far below at its defaults
    match = match_capacity(baseline, target, **SHAPES)
    assert abs(match.ratio - 1) <= 0.10 and match.target == target
    name, options = registry.parse_spec(match.fusion)
    assert name == registry.parse_spec(baseline)[0]
    assert registry.parse_spec(baseline)[1].items() <= options.items()  # its own options are kept
    assert model_parameters(match.fusion, match.head, **SHAPES) == match.params


def test_a_fusion_without_a_size_knob_is_a_clear_error():
    with pytest.raises(ValueError, match="no size knob"):
        match_capacity("film", 10**6, **SHAPES)
    with pytest.raises(ValueError, match="could not match"):
        match_capacity("concat_mlp", 10**12, **SHAPES)
