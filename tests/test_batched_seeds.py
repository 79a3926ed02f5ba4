"""Batched seeds: the seeds of one configuration trained as one stacked model reproduce their runs alone.

Per registered fusion (tiny dims, 1 epoch, 2 seeds): either the stack's metrics and history equal the
runs alone within :data:`TOLERANCE`, or the fusion is one of the known unstackable ones and the group
refuses with the reason. Then per-seed early stopping / divergence / checkpoints, the grid's grouping
and resume, the CLI flag, and the rows' execution columns.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from fusionzoo import registry
from fusionzoo.bench.seed_groups import SeedGroupTask, execute_seed_group, group_seed_tasks, stacks_by_default
from fusionzoo.cli.bench import bench
from fusionzoo.experiment import RunSpec
from fusionzoo.interface import Fusion, FusionOutput
from fusionzoo.launch.base import RunTask
from fusionzoo.testing.token_features import synthetic_features
from fusionzoo.train.batched import train_seeds
from fusionzoo.train.checkpoint import load_checkpoint
from fusionzoo.train.config import RunConfig
from fusionzoo.train.stacked import Unbatchable
from fusionzoo.train.trainer import train_run

TOLERANCE = 1e-4  # |stacked − alone| on every continuous metric and history value
TINY = {"dim": 16, "epochs": 1, "batch_size": 32, "lr": 3e-3, "device": "cpu", "dropout": 0.1}
# fusions whose stack cannot reproduce their runs, and why (any other registered fusion must stack)
UNSTACKABLE = {
    "fluid": "vmap",  # data-dependent control flow / boolean-mask indexing
    "energy_aware_adaptive": "vmap",  # data-dependent control flow (its routing)
    "late_fusion": "vmap",  # decisions: the head reads the real tokens only (boolean-mask indexing)
    # nn.TransformerEncoderLayer / MultiheadAttention: dropout on a transposed view draws in memory
    # order, which vmap's random rule does not expose, so the stack's masks are not the run's
    "early_fusion": "differs from the run alone",
    "mbt": "differs from the run alone",
    "mult": "differs from the run alone",
    "qformer": "differs from the run alone",
    "transformer_concat": "differs from the run alone",
}


@pytest.fixture(scope="module")
def data():
    return synthetic_features(96, 40, 40, seed=0)


def _spec(name: str) -> str:
    config = getattr(registry.get_fusion_class(name), "test_config", None) or {}
    return registry.format_spec(name, config)


def _close(a: dict[str, float], b: dict[str, float]) -> None:
    assert set(a) == set(b)
    for key, value in b.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(a[key]), key
        elif key != "epoch_time":
            assert a[key] == pytest.approx(value, abs=TOLERANCE, rel=TOLERANCE), key


def _same_result(stacked, alone) -> None:
    assert stacked.status == alone.status and stacked.error == alone.error
    assert (stacked.best_epoch, stacked.epochs_run, stacked.steps) == (
        alone.best_epoch,
        alone.epochs_run,
        alone.steps,
    )
    assert stacked.stopped_early == alone.stopped_early
    _close(stacked.metrics, alone.metrics)
    _close(stacked.val_metrics, alone.val_metrics)
    assert len(stacked.history) == len(alone.history)
    for a, b in zip(stacked.history, alone.history, strict=True):
        _close(a, b)
    if alone.test_predictions is not None:
        agree = np.mean(stacked.test_predictions == alone.test_predictions)
        assert agree >= 0.97  # argmax may flip only on a near-tie


@pytest.mark.parametrize("name", registry.list_fusions())
def test_stack_matches_runs_alone_for_every_fusion(name, data):
    configs = [RunConfig(fusion=_spec(name), head="mlp", seed=seed, **TINY) for seed in (0, 3)]
    if name in UNSTACKABLE:
        with pytest.raises(Unbatchable, match=UNSTACKABLE[name]):
            train_seeds(configs, data)
        return
    stacked = train_seeds(configs, data)
    for result, config in zip(stacked, configs, strict=True):
        _same_result(result, train_run(config, data))


def test_every_head_stacks_on_a_vector_fusion(data):
    # a vector fusion's single token has no mask: the MoE head routes every token (no boolean indexing)
    for head in registry.list_heads():
        configs = [
            RunConfig(fusion="film", head=registry.format_spec(head, {}), seed=s, **TINY) for s in (0, 1)
        ]
        for result, config in zip(train_seeds(configs, data), configs, strict=True):
            _same_result(result, train_run(config, data))


def test_the_moe_head_on_masked_tokens_refuses_to_stack(data, temp_fusions):
    @temp_fusions
    class TextTokens(Fusion):
        """The text tokens and their padding mask, as they are."""

        name = "test_text_tokens"

        def forward(self, image, text, image_mask=None, text_mask=None):
            return FusionOutput(tokens=text, mask=text_mask)

    configs = [RunConfig(fusion="test_text_tokens", head="moe", seed=s, **TINY) for s in (0, 1)]
    with pytest.raises(Unbatchable, match="boolean mask"):  # routes the real tokens only
        train_seeds(configs, data)
    configs = [c.replace(head="mlp") for c in configs]
    for result, config in zip(train_seeds(configs, data), configs, strict=True):
        _same_result(result, train_run(config, data))


def test_per_seed_early_stopping_freezes_the_stopped_member(data):
    configs = [
        RunConfig(fusion="concat_mlp", seed=s, **{**TINY, "epochs": 8, "lr": 3e-2}, patience=1)
        for s in (0, 1, 2, 5)
    ]
    stacked = train_seeds(configs, data)
    alone = [train_run(c, data) for c in configs]
    for result, single in zip(stacked, alone, strict=True):
        _same_result(result, single)
    assert len({r.epochs_run for r in alone}) > 1  # members stopped at different epochs
    assert any(r.stopped_early for r in alone)


def test_a_diverging_member_stops_alone_while_the_others_go_on(data, temp_fusions):
    @temp_fusions
    class SeedBomb(Fusion):
        """Tokens × s with s drawn at init; once s has moved (after the first step), NaN for the seeds
        whose draw was > 0.5."""

        name = "test_seed_bomb"

        def __init__(self, dim: int) -> None:
            super().__init__(dim)
            self.draw = nn.Parameter(torch.rand(()))
            self.register_buffer("start", self.draw.detach().clone())
            self.proj = nn.Linear(dim, dim)

        def forward(self, image, text, image_mask=None, text_mask=None):
            bomb = (self.start > 0.5) & (self.draw != self.start)
            scale = torch.where(bomb, torch.full_like(self.draw, float("nan")), self.draw)
            return FusionOutput(tokens=self.proj(image[:, :1]) * scale)

    seeds = [0, 1, 2, 3]
    configs = [RunConfig(fusion="test_seed_bomb", seed=s, **TINY) for s in seeds]
    stacked = train_seeds(configs, data)
    alone = [train_run(c, data) for c in configs]
    assert {r.status for r in alone} == {"ok", "diverged"}  # the seeds differ
    for result, single in zip(stacked, alone, strict=True):
        _same_result(result, single)


def _spec_of(config: RunConfig, dataset: str = "synth") -> RunSpec:
    return RunSpec.create(dataset, config, "fp")


def test_stacking_is_on_by_default_only_on_cuda(monkeypatch):
    specs = [_spec_of(RunConfig(fusion="film", seed=s, **{**TINY, "device": "auto"})) for s in (0, 1)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not stacks_by_default(specs)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert stacks_by_default(specs)
    assert not stacks_by_default([_spec_of(RunConfig(fusion="film", seed=0, **TINY))])  # device cpu


def test_grouping_merges_the_seeds_of_one_configuration_only():
    film = [_spec_of(RunConfig(fusion="film", seed=s, **TINY)) for s in (0, 1, 2)]
    concat = [_spec_of(RunConfig(fusion="concat_mlp", seed=s, **TINY)) for s in (0, 1)]
    lonely = _spec_of(RunConfig(fusion="film", seed=0, **{**TINY, "lr": 1e-2}))
    probe = RunSpec.create("synth", RunConfig(fusion="concat_mlp", seed=1, **TINY), "fp", kind="probe")
    tasks = [RunTask(s, None) for s in [film[0], concat[0], lonely, film[1], probe, concat[1], film[2]]]
    grouped = group_seed_tasks(tasks)
    assert [type(t).__name__ for t in grouped] == ["SeedGroupTask", "SeedGroupTask", "RunTask", "RunTask"]
    assert [t.spec.seed for t in grouped[0].members] == [0, 1, 2]
    assert [t.spec.fusion for t in grouped[1].members] == ["concat_mlp"] * 2
    assert grouped[2].spec is lonely and grouped[3].spec is probe
    assert grouped[0].label == "film + mlp · seeds 0, 1, 2"


def test_an_unstackable_group_trains_each_seed_alone_and_says_why(data, tmp_path):
    specs = [
        _spec_of(RunConfig(fusion="fluid:layers=1,queries=4", head="moe", seed=s, **TINY)) for s in (0, 1)
    ]
    members = [RunTask(s, tmp_path / s.run_id) for s in specs]
    record = execute_seed_group(SeedGroupTask(specs[0], members[0].checkpoint_dir, members=members), data)
    records = [record, *record.group]
    assert [r.spec.seed for r in records] == [0, 1]
    for r, spec in zip(records, specs, strict=True):
        assert r.row["seed_batch"] == 1 and r.row["execution"].startswith("single (its forward or backward")
        assert r.row["test_accuracy"] == pytest.approx(train_run(spec.config, data).metrics["accuracy"])


def test_checkpoints_are_each_members_best_weights(data, tmp_path):
    specs = [_spec_of(RunConfig(fusion="gated", seed=s, **{**TINY, "epochs": 2})) for s in (0, 1, 2)]
    members = [RunTask(s, tmp_path / s.run_id) for s in specs]
    record = execute_seed_group(SeedGroupTask(specs[0], members[0].checkpoint_dir, members=members), data)
    for r, task in zip([record, *record.group], members, strict=True):
        assert r.row["execution"] == "stacked" and r.row["seed_batch"] == 3
        alone = train_run(task.spec.config, data, checkpoint_dir=tmp_path / "alone" / task.spec.run_id)
        model, config, info = load_checkpoint(task.checkpoint_dir)
        reference, _, _ = load_checkpoint(alone.checkpoint)
        assert config.seed == task.spec.seed and info["best_epoch"] == alone.best_epoch
        for (name, value), (_, expected) in zip(
            model.state_dict().items(), reference.state_dict().items(), strict=True
        ):
            torch.testing.assert_close(value, expected, rtol=TOLERANCE, atol=TOLERANCE, msg=name)


# ------------------------------------------------------------------------------------------ CLI
TINY_DATA = ["size=240", "n_colours=2", "n_shapes=1", "n_genders=1", "n_materials=2"]
TINY_RUN = ["--epochs", "2", "--dim", "16", "--batch-size", "32", "--no-unimodal"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("batched-data")


def _bench(data_dir: Path, out: Path, *extra: str) -> pd.DataFrame:
    args = ["--data-dir", str(data_dir)]
    for option in TINY_DATA:
        args += ["--data-option", option]
    result = CliRunner().invoke(
        bench, [*args, "--fusions", "film,concat_mlp", *TINY_RUN, "--out", str(out), *extra]
    )
    assert result.exit_code == 0, result.output
    return pd.read_parquet(out / "results.parquet").set_index("run_id")


def test_cli_batched_equals_one_at_a_time_and_resumes_per_seed(data_dir, tmp_path):
    out = tmp_path / "batched"
    first = _bench(data_dir, out, "--seeds", "0", "--batch-seeds")
    assert set(first["execution"]) == {"single"}  # one seed per configuration: a plain run
    grown = _bench(data_dir, out, "--seeds", "0,1,2", "--batch-seeds")
    assert len(grown) == 6
    assert (grown.loc[first.index, "finished_at"] == first["finished_at"]).all()  # seed 0 not retrained
    new = grown.drop(index=first.index)
    assert set(new["execution"]) == {"stacked"} and set(new["seed_batch"]) == {2}  # the missing seeds only

    alone = _bench(data_dir, tmp_path / "alone", "--seeds", "0,1,2")  # default on CPU: one at a time
    assert set(alone["execution"]) == {"single"} and set(alone["seed_batch"]) == {1}
    assert sorted(alone.index) == sorted(grown.index)  # the execution mode is not part of the identity
    for column in ("test_accuracy", "test_macro_f1", "val_accuracy", "best_epoch", "epochs_run"):
        np.testing.assert_allclose(grown.loc[alone.index, column], alone[column], atol=TOLERANCE)
