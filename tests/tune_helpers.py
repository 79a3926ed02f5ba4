"""Tiny data and settings shared by the tuning tests (importable by worker subprocesses)."""

from __future__ import annotations

import os
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
# the tune CLI's tiny budget in subprocess tests
TINY_FLAGS = ["--epochs", "1", "--dim", "16", "--batch-size", "32", "--device", "cpu"]


def subprocess_env() -> dict[str, str]:
    """The environment of a ``fusionzoo`` subprocess: these helpers importable, one thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    return env


DATA_FACTORY = "tune_helpers:tiny_data"
TINY_RUN = {"dim": 16, "epochs": 1, "batch_size": 32, "device": "cpu", "patience": 0}
_cache: dict[str, object] = {}


def tiny_data():
    """96/32/32 synthetic token features (6 classes): a trial trains in well under a second."""
    if "data" not in _cache:
        from fusionzoo.testing.token_features import synthetic_features

        _cache["data"] = synthetic_features(96, 32, 32, seed=0)
    return _cache["data"]


SYNCED_DATA_FACTORY = "tune_helpers:tiny_data_synced"
BARRIER_ENV = "FUSIONZOO_TEST_BARRIER"


def tiny_data_synced():
    """:func:`tiny_data` after a barrier: each worker process waits until ``$FUSIONZOO_TEST_BARRIER_N``
    (default 2) processes have reached it, so every worker of a test starts its trials together and
    none can finish the whole budget while another is still importing torch."""
    import os
    import time

    folder = Path(os.environ[BARRIER_ENV])
    expected = int(os.environ.get(BARRIER_ENV + "_N", "2"))
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + 120
    while len(list(folder.iterdir())) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return tiny_data()


def tiny_data_broken_in_workers():
    """:func:`tiny_data` in the process that starts the workers, an error in every worker process."""
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        raise RuntimeError("this worker's data cannot be read")
    return tiny_data()


BROKEN_IN_WORKERS_FACTORY = "tune_helpers:tiny_data_broken_in_workers"


def record_training_threads(monkeypatch) -> list[tuple[int, int]]:
    """Patch the trainer so every training (trial or run) records (its seed, torch's thread count)."""
    import torch

    import fusionzoo.train.trainer as trainer

    seen: list[tuple[int, int]] = []
    real = trainer.train_run

    def recording(config, data, **kwargs):
        seen.append((config.seed, torch.get_num_threads()))
        return real(config, data, **kwargs)

    monkeypatch.setattr(trainer, "train_run", recording)
    return seen
