"""A real dataset named without ``--config`` trains with the real-data defaults (the ``real`` preset,
chosen on real features); the embedded demo keeps the quick preset; ``--config`` and flags still win."""

from __future__ import annotations

import pytest

from fusionzoo.cli.options import config_from_flags
from fusionzoo.config import default_preset, load_config
from fusionzoo.datasets.base import DatasetBackend, register_dataset
from fusionzoo.registry import REGISTRIES


def test_real_datasets_start_from_the_real_preset():
    real = load_config("real")
    for dataset in ("glami1m", "csv"):
        assert default_preset(dataset) == "real"
        config = config_from_flags({"dataset": dataset})
        assert config.train == real.train and config.fusion_options == real.fusion_options
        assert config.bench.datasets == [dataset] and config.runs_dir().name == dataset
    assert real.train.dim == 256 and real.train.lr == 5e-4  # what docs/real-defaults.md measured


def test_the_demo_keeps_the_quick_preset_and_explicit_choices_win():
    quick = load_config("quick")
    assert default_preset("synth") == "quick"
    assert config_from_flags({"dataset": "synth"}).train == quick.train
    assert config_from_flags({}).train == quick.train
    assert config_from_flags({"dataset": "glami1m"}, "quick").train.dim == quick.train.dim
    assert config_from_flags({"dataset": "glami1m", "dim": 32}).train.dim == 32


def test_a_third_party_backend_inherits_the_real_defaults():
    @register_dataset(name="elsewhere_test")
    class Elsewhere(DatasetBackend):
        def load(self, **options):  # pragma: no cover - never loaded here
            raise NotImplementedError

    try:
        assert default_preset("elsewhere_test") == "real"
        assert config_from_flags({"dataset": "elsewhere_test"}).train.dim == 256
    finally:
        REGISTRIES["dataset"].unregister("elsewhere_test")


@pytest.mark.parametrize("name", ["nosuchset", None])
def test_unknown_or_no_dataset_falls_back_to_quick_for_validation_to_report(name):
    assert default_preset(name) is None
