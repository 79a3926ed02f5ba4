"""The --dry-run cost estimate: earlier runs first, else timed training steps of the run's model (once per
configuration), each estimate naming its source."""

from __future__ import annotations

import json
import math

import pytest

from fusionzoo.bench import estimate as estimate_module
from fusionzoo.bench.estimate import Estimator, time_steps
from fusionzoo.experiment import RunSpec
from fusionzoo.results.store import ResultsStore
from fusionzoo.train.config import RunConfig

SHAPES = {
    "image_tokens": 4,
    "image_dim": 8,
    "text_tokens": 5,
    "text_dim": 8,
    "num_classes": 3,
    "n_train": 100,
    "n_val": 20,
    "n_test": 30,
}


def spec(fusion: str, seed: int = 0, epochs: int = 2, head: str = "mlp") -> RunSpec:
    config = RunConfig(fusion=fusion, head=head, dim=8, epochs=epochs, batch_size=32, seed=seed, device="cpu")
    return RunSpec.create("synth", config, "fp")


def test_timed_estimate_is_steps_times_the_measured_step_once_per_configuration(monkeypatch):
    calls = []

    def fake(config, shapes, threads):
        calls.append((config.fusion, threads))
        return 0.5, 0.001

    monkeypatch.setattr(estimate_module, "time_steps", fake)
    estimator = Estimator(None, threads=1)
    first, second = estimator(spec("film", 0), SHAPES), estimator(spec("film", 1), SHAPES)
    steps = math.ceil(100 / 32) * 2
    expected = steps * 0.5 + (20 * 2 + 30) * 0.001
    assert first.seconds == pytest.approx(expected) and second.seconds == pytest.approx(expected)
    assert first.source == "timed steps" and calls == [("film", 1)]  # seeds share the measurement
    estimator(spec("concat_mlp", 0), SHAPES)
    assert len(calls) == 2


def test_earlier_runs_come_first_and_say_so(tmp_path):
    store = ResultsStore(tmp_path)
    done = spec("film", 0)
    store.record(
        {
            **done.identity,
            "seed": 0,
            "status": "ok",
            "train_time": 12.0,
            "config": json.dumps({}),
        }
    )
    estimator = Estimator(store)
    same = estimator(spec("film", 1), SHAPES)
    assert (same.seconds, same.source) == (12.0, "earlier runs (1)")
    other = estimator(spec("film", 1, epochs=5), None)
    assert (other.seconds, other.source) == (12.0, "earlier runs, other settings (1)")
    unknown = estimator(spec("concat_mlp", 0), None)  # no earlier run, no cached shapes
    assert math.isnan(unknown.seconds) and unknown.source == ""


def test_time_steps_trains_the_real_model_at_the_data_shapes():
    step, per_row = time_steps(spec("fluid:queries=4,layers=1", head="moe").config, SHAPES, threads=1)
    assert 0 < step < 10 and 0 < per_row < 1
