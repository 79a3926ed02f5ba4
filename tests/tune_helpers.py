"""Tiny data and settings shared by the tuning tests (importable by worker subprocesses)."""

from __future__ import annotations

from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
DATA_FACTORY = "tune_helpers:tiny_data"
TINY_RUN = {"dim": 16, "epochs": 1, "batch_size": 32, "device": "cpu", "patience": 0}
_cache: dict[str, object] = {}


def tiny_data():
    """96/32/32 synthetic token features (6 classes): a trial trains in well under a second."""
    if "data" not in _cache:
        from fusionzoo.train.synthetic import synthetic_features

        _cache["data"] = synthetic_features(96, 32, 32, seed=0)
    return _cache["data"]
