"""``fusionzoo tune``: search spaces, SQLite/journal studies, exact budgets, pruning, export, bad input.

Every trial trains on tiny in-memory synthetic features (``tune_helpers.tiny_data``) for 1–3 epochs, so
a trial takes a fraction of a second; subprocess workers get the same data through ``--data-factory``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState
from tune_helpers import (
    BARRIER_ENV,
    DATA_FACTORY,
    SYNCED_DATA_FACTORY,
    TINY_FLAGS,
    TINY_RUN,
    record_training_threads,
    subprocess_env,
    tiny_data,
)

from fusionzoo.cli import main
from fusionzoo.tune import TuneError
from fusionzoo.tune.budget import STATUS_ATTR, budget_counts, claim_slot
from fusionzoo.tune.objective import resolve_objective, resolve_objectives
from fusionzoo.tune.space import SearchSpaceError, build_space
from fusionzoo.tune.storage import resolve_storage
from fusionzoo.tune.study import TuneSettings, best_trials
from fusionzoo.tune.worker import run_worker

# everything but lr fixed, lr either useful or useless: trials differ a lot after epoch 1
PRUNE_SPACE = {
    "weight_decay": 0.01,
    "label_smoothing": 0.0,
    "proj_dropout": 0.0,
    "hidden_mult": 1.0,
    "dropout": 0.0,
    "lr": {"choices": [0.03, 1e-6]},
}


@pytest.fixture(autouse=True)
def _quiet_optuna():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield


def _tune(*args: str, catch: bool = False):
    result = CliRunner().invoke(main, ["tune", *args], catch_exceptions=catch)
    return result


def _settings(**changes) -> TuneSettings:
    values = {
        "fusion": "concat_mlp",
        "head": "linear",
        "trials": 3,
        "storage": "memory",
        "aux_losses": [],
        "base_config": dict(TINY_RUN),
    }
    values.update(changes)
    return TuneSettings(**values)


def _load(storage: str, study: str) -> optuna.Study:
    return optuna.load_study(study_name=study, storage=storage)


# ------------------------------------------------------------------------------------------- spaces
def test_show_space_merges_fusion_head_and_training_space():
    result = _tune("--show-space", "fluid", "--head", "moe")
    assert result.exit_code == 0, result.output
    for name in ("lr", "weight_decay", "label_smoothing", "proj_dropout", "fluid_queries", "moe_experts"):
        assert name in result.output
    space = build_space("fluid", "moe")
    # aux losses found by probing the model get a loss-weight parameter each
    assert {"aux_contrastive", "aux_load_balance"} <= set(space.params)
    assert space.params["lr"].distribution.log


def test_space_overrides_fixes_and_spec_kwargs(tmp_path):
    space = build_space(
        "concat_mlp:hidden_mult=4.0",
        "mlp",
        aux_losses=[],
        overrides={
            "lr": {"low": 1e-3, "high": 2e-3, "log": True},
            "head_dropout": 0.25,
            "batch_size": {"choices": [16, 32]},
        },
    )
    assert space.params["hidden_mult"].fixed == 4.0  # fixed by the spec string
    assert space.params["head_dropout"].fixed == 0.25
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        suggestion = space.suggest(trial)
        assert 1e-3 <= suggestion.train["lr"] <= 2e-3
        assert suggestion.train["batch_size"] in (16, 32)
        assert suggestion.head_kwargs["dropout"] == 0.25
        assert suggestion.fusion_kwargs["hidden_mult"] == 4.0
        assert "head_dropout" not in trial.params and "hidden_mult" not in trial.params
        study.tell(trial, 0.0)
    with pytest.raises(SearchSpaceError, match="low <= high"):
        build_space("concat_mlp", "mlp", aux_losses=[], overrides={"lr": {"low": 1.0, "high": 0.1}})


def test_unknown_parameter_in_toml_space_lists_valid_names(tmp_path):
    config = tmp_path / "tune.toml"
    config.write_text("[space]\nweight_decy = { low = 1e-4, high = 1e-2, log = true }\n")
    result = _tune("--show-space", "concat_mlp", "--head", "mlp", "--config", str(config))
    assert result.exit_code == 2
    assert (
        "unknown parameter 'weight_decy'" in result.output and "did you mean 'weight_decay'" in result.output
    )
    assert "Valid parameters: lr, weight_decay" in result.output and "head_dropout" in result.output


# ------------------------------------------------------------------------------- SQLite: run/resume
def test_sqlite_study_completes_resumes_to_exact_total_and_exports_for_bench(tmp_path):
    db = f"sqlite:///{tmp_path / 'optuna.db'}"
    common = [
        "--fusion",
        "concat_mlp",
        "--head",
        "linear",
        "--storage",
        db,
        "--study",
        "s",
        "--seed",
        "3",
        "--data-factory",
        DATA_FACTORY,
        "--out",
        str(tmp_path / "runs"),
        *TINY_FLAGS,
    ]
    first = _tune(*common, "--trials", "3")
    assert first.exit_code == 0, first.output
    study = _load(db, "s")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    params_before = [t.params for t in study.trials]
    for trial in study.trials:  # full config + metrics stored with every trial
        assert trial.user_attrs["config"]["fusion"].startswith("concat_mlp:")
        assert trial.user_attrs["config"]["lr"] == pytest.approx(trial.params["lr"])
        assert trial.value == pytest.approx(trial.user_attrs["metrics"]["val_macro_f1"])
        assert "test_accuracy" in trial.user_attrs["metrics"] and trial.user_attrs[STATUS_ATTR] == "complete"

    export = tmp_path / "best.toml"
    second = _tune(*common, "--trials", "5", "--export", str(export), "--plots")
    assert second.exit_code == 0, second.output
    plots = sorted(p.name for p in (tmp_path / "runs" / "plots").glob("*.png"))
    assert plots == ["s_history.png", "s_importances.png"]
    study = _load(db, "s")
    assert len(study.trials) == 5 and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert [t.params for t in study.trials[:3]] == params_before  # resumed, not restarted
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 5  # no replayed suggestions

    third = _tune(*common, "--trials", "5")  # target reached: nothing runs
    assert third.exit_code == 0 and "0 trial(s) this run" in third.output
    assert len(_load(db, "s").trials) == 5

    # the export is a bench preset that trains exactly the best trial's config
    from fusionzoo.config import load_config
    from fusionzoo.experiment import Experiment

    best = study.best_trial
    preset = load_config(export)
    specs = Experiment(preset).grid({"synth": "any"})
    assert [s.seed for s in specs] == [0, 1, 2]
    assert specs[0].config.config_hash() == best.user_attrs["config_hash"]
    assert specs[0].fusion == best.user_attrs["config"]["fusion"]
    dry = CliRunner().invoke(
        main, ["bench", "--config", str(export), "--dry-run", "--out", str(tmp_path / "b")]
    )
    assert dry.exit_code == 0, dry.output
    assert "3 runs" in dry.output


@pytest.mark.parametrize(
    ("pruner", "options", "trials"), [("median", {"n_startup_trials": 1}, 6), ("hyperband", {}, 8)]
)
def test_pruner_prunes_unpromising_trials(pruner, options, trials):
    settings = _settings(
        trials=trials,
        sampler="random",
        pruner=pruner,
        base_config={**TINY_RUN, "epochs": 3},
        space_overrides=PRUNE_SPACE,
        pruner_options=options,
    )
    storage = resolve_storage("memory")
    report = run_worker(settings, data=tiny_data(), storage=storage)
    study = optuna.load_study(study_name=report.study_name, storage=storage.storage)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, [(t.state, t.intermediate_values) for t in study.trials]
    assert report.counts.finished == trials and report.counts.pruned == len(pruned)
    for trial in pruned:  # stopped after epoch 1, with the reason recorded
        assert list(trial.intermediate_values) == [1]
        assert trial.user_attrs[STATUS_ATTR] == "pruned" and trial.user_attrs["pruned_at_epoch"] == 1
        assert trial.user_attrs["metrics"]["val_macro_f1"] == trial.intermediate_values[1]
        assert "config" in trial.user_attrs
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert all(len(t.intermediate_values) == 3 for t in complete)


def test_claim_is_exact_when_workers_race_for_the_last_slot():
    study = optuna.create_study()
    trials = [study.ask() for _ in range(3)]  # three workers asked at once with 2 slots left
    assert [claim_slot(study, t.number, 2) for t in trials] == [True, True, False]
    study.tell(trials[0], state=TrialState.FAIL)  # a dead worker's trial (no status): its slot is free again
    assert claim_slot(study, trials[2].number, 2)


def test_queued_trial_beyond_the_target_becomes_an_uncounted_overflow(caplog):
    from fusionzoo.tune.study import build_settings_space, open_study

    settings = _settings(trials=2)
    storage = resolve_storage("memory")
    assert run_worker(settings, data=tiny_data(), storage=storage).counts.complete == 2
    study = open_study(settings, storage, build_settings_space(settings))
    study.enqueue_trial({"lr": 1e-3})  # e.g. a retry that arrives after the budget was filled
    with caplog.at_level("WARNING"):
        report = run_worker(settings, data=tiny_data(), storage=storage)
    counts = report.counts
    assert (counts.complete, counts.overflow, counts.waiting, counts.counted, report.ran) == (2, 1, 0, 2, 0)
    assert study.trials[2].user_attrs[STATUS_ATTR] == "overflow"
    assert not [r for r in caplog.records if "Trial 2 failed" in r.getMessage()]  # no scary traceback


# ---------------------------------------------------------------------------- journal, 2 processes
def test_journal_storage_with_two_worker_processes(tmp_path):
    """``--workers 2`` of the installed ``fusionzoo`` script on a journal file: one study, exact total."""
    journal = tmp_path / "optuna.journal"
    script = os.path.join(os.path.dirname(sys.executable), "fusionzoo")
    cmd = [script, "tune", "--fusion", "concat_mlp", "--head", "linear", "--storage", f"journal:{journal}",
           "--study", "j", "--trials", "6", "--workers", "2", "--data-factory", SYNCED_DATA_FACTORY,
           "--out", str(tmp_path / "runs"), *TINY_FLAGS]  # fmt: skip
    (tmp_path / "barrier").mkdir()
    env = {**subprocess_env(), BARRIER_ENV: str(tmp_path / "barrier")}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    storage = resolve_storage(f"journal:{journal}")
    study = optuna.load_study(study_name="j", storage=storage.storage)
    counts = budget_counts(study.trials)
    assert counts.finished == 6 and counts.running == 0 and counts.waiting == 0
    workers = {t.user_attrs["worker"] for t in study.trials if t.state == TrialState.COMPLETE}
    assert len(workers) == 2, workers  # both processes ran trials
    assert "6 complete" in result.stdout


def test_journal_worker_requeues_the_trial_of_a_dead_local_process(tmp_path):
    """Journal storages have no heartbeats: a RUNNING trial of a dead process on this host is retried."""
    import socket

    from fusionzoo.tune.study import build_settings_space, open_study

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    settings = _settings(trials=2, storage=f"journal:{tmp_path / 'j.journal'}")
    storage = resolve_storage(settings.storage)
    study = open_study(settings, storage, build_settings_space(settings))
    orphan = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)})
    study._storage.set_trial_user_attr(orphan._trial_id, "worker", f"{socket.gethostname()}:{dead.pid}")
    report = run_worker(settings, data=tiny_data(), storage=storage)
    trials = study.get_trials()
    assert report.counts.finished == 2 and report.counts.running == 0 and report.counts.stale == 1
    assert trials[orphan.number].state == TrialState.FAIL
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == orphan.number)
    assert retry.state == TrialState.COMPLETE and retry.params["lr"] == trials[orphan.number].params["lr"]


# ------------------------------------------------------------------------------------ multi-objective
def test_multi_objective_returns_pareto_front():
    settings = _settings(trials=5, objectives=["accuracy", "latency"], sampler="random")
    storage = resolve_storage("memory")
    report = run_worker(settings, data=tiny_data(), storage=storage)
    study = optuna.load_study(study_name=report.study_name, storage=storage.storage)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert report.counts.complete == 5 and report.counts.pruned == 0
    front = best_trials(study)
    assert front and {t.number for t in front} == {t.number for t in study.best_trials}
    for trial in front:
        accuracy, latency = trial.values
        assert latency > 0 and trial.user_attrs["metrics"]["latency"] == latency
        dominated = any(
            o.values[0] >= accuracy and o.values[1] <= latency and o.values != trial.values
            for o in study.trials
        )
        assert not dominated


# ---------------------------------------------------------------------------------------- bad input
def test_unreachable_storage_names_url_without_password():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    url = f"postgresql+psycopg2://tuner:hunter2secret@127.0.0.1:{port}/optuna"
    with pytest.raises(TuneError) as info:
        resolve_storage(url)
    message = str(info.value)
    assert f"tuner:***@127.0.0.1:{port}/optuna" in message and "hunter2secret" not in message
    result = _tune("--fusion", "concat_mlp", "--storage", url, "--data-factory", DATA_FACTORY)
    assert result.exit_code == 1
    assert f"127.0.0.1:{port}" in result.output and "hunter2secret" not in result.output


def test_unknown_metric_lists_valid_metrics():
    result = _tune("--fusion", "concat_mlp", "--metric", "val_auc", "--storage", "memory")
    assert result.exit_code == 2
    assert "unknown metric 'val_auc'" in result.output and "val_macro_f1" in result.output
    with pytest.raises(TuneError, match="valid metrics: val_accuracy"):
        resolve_objective("f1_score")
    result = _tune("--fusion", "concat_mlp", "--objectives", "accuracy,speed", "--storage", "memory")
    assert result.exit_code == 2 and "unknown metric 'speed'" in result.output


def test_existing_study_with_another_direction_is_an_error(tmp_path):
    db = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(storage=db, study_name="taken", direction="minimize")
    result = _tune(
        "--fusion",
        "concat_mlp",
        "--storage",
        db,
        "--study",
        "taken",
        "--data-factory",
        DATA_FACTORY,
        *TINY_FLAGS,
    )
    assert result.exit_code == 1
    assert "study 'taken'" in result.output and "already exists with direction(s) minimize" in result.output
    assert "val_macro_f1 (maximize)" in result.output


# ------------------------------------------------------------------------------- study identity
def test_resuming_a_study_with_another_budget_or_data_is_refused(tmp_path):
    """A study records what defines its objective; a changed budget, data or metric is an error that
    names the change and suggests a new study name (before, the trials were silently mixed)."""
    storage = resolve_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=None)
    base = _settings(study_name="same", data_factory=DATA_FACTORY, trials=1)
    run_worker(base, storage=storage)
    run_worker(base.replace(trials=2), storage=storage)  # a bigger target is a resume, not a change
    with pytest.raises(TuneError, match=r"epochs: the study has 1, this run 2.*--study same-2"):
        run_worker(base.replace(base_config={**TINY_RUN, "epochs": 2}), storage=storage)
    with pytest.raises(TuneError, match=r"data: the study has 'synth0', this run 'other'"):
        run_worker(base.replace(data_fingerprint="other"), storage=storage)
    with pytest.raises(TuneError, match=r"fixed: .*'batch_size': 32.*'batch_size': 16"):
        run_worker(base.replace(base_config={**TINY_RUN, "batch_size": 16}), storage=storage)
    with pytest.raises(TuneError, match="objectives"):
        run_worker(base.replace(metric="val_accuracy"), storage=storage)


# ------------------------------------------------------------------------------- objective choices
ERROR_RATE_PLUGIN = '''
import numpy as np

from fusionzoo.metrics.base import Metric, register_metric


@register_metric
class ErrorRate(Metric):
    """Share of wrong predictions, 1 - accuracy: lower is better."""

    name = "error_rate"
    direction = "min"

    def compute(self, ctx):
        return {"error_rate": float(np.mean(ctx.preds != ctx.labels))}
'''


def test_the_latency_objective_is_the_registered_latency_metric(monkeypatch):
    """One latency: the objective is ``latency_p50_ms`` of the registered ``latency`` metric (batch 1)."""
    from fusionzoo.metrics.latency import Latency

    seen = []

    def fake(self, ctx):
        seen.append((ctx.image_dim, ctx.num_classes))
        return {"latency_p50_ms": 4.25, "latency_p95_ms": 9.0}

    monkeypatch.setattr(Latency, "compute", fake)
    settings = _settings(trials=2, objectives=["accuracy", "latency"], sampler="random")
    storage = resolve_storage("memory")
    data = tiny_data()
    report = run_worker(settings, data=data, storage=storage)
    study = optuna.load_study(study_name=report.study_name, storage=storage.storage)
    assert [t.values[1] for t in study.trials] == [4.25, 4.25]
    assert seen == [(data.image_dim, data.num_classes)] * 2


def test_objective_choices_come_from_the_metric_registry(tmp_path):
    """A metric plugin file is a tuning objective: ``val_<its column>``, minimised for direction "min"."""
    from fusionzoo.registry import REGISTRIES
    from fusionzoo.tune.objective import objective_choices

    assert objective_choices()["val_macro_f1"] == "maximize" and "val_error_rate" not in objective_choices()
    plugin = tmp_path / "error_rate_metric.py"
    plugin.write_text(ERROR_RATE_PLUGIN)
    db = f"sqlite:///{tmp_path / 'optuna.db'}"
    try:
        result = _tune("--plugin", str(plugin), "--fusion", "concat_mlp", "--head", "linear",
                       "--metric", "val_error_rate", "--trials", "2", "--storage", db, "--study", "err",
                       "--data-factory", DATA_FACTORY, "--out", str(tmp_path / "runs"), *TINY_FLAGS)  # fmt: skip
        assert result.exit_code == 0, result.output
        study = _load(db, "err")
        assert [d.name for d in study.directions] == ["MINIMIZE"]
        for trial in study.trials:
            metrics = trial.user_attrs["metrics"]
            assert trial.value == pytest.approx(metrics["val_error_rate"])
            assert metrics["val_error_rate"] == pytest.approx(1 - metrics["val_accuracy"])
        assert [o.direction for o in resolve_objectives(None, "accuracy,error_rate")] == [
            "maximize",
            "minimize",
        ]
    finally:
        REGISTRIES["metric"].unregister("error_rate")
    with pytest.raises(TuneError, match="unknown metric 'val_error_rate'"):
        resolve_objective("val_error_rate")


def test_test_metrics_are_never_an_objective():
    with pytest.raises(TuneError, match="validation split only.*'val_accuracy'"):
        resolve_objective("test_accuracy")
    assert resolve_objective("acc_geo_cz").key == "val_acc_geo_cz"  # a metric family (acc_geo_*)
    with pytest.raises(TuneError, match="unknown metric 'acc_geo_'"):
        resolve_objective("acc_geo_")


# ------------------------------------------------------------------------------ plugin search spaces
def _throwaway_fusion(name: str, **members):
    from fusionzoo.fusions.concat_mlp import ConcatMLP
    from fusionzoo.registry import register_fusion

    # concat_mlp names its parameters bare (search_space_prefix = ""); these use the default prefix
    return register_fusion(type(name, (ConcatMLP,), {"name": name, "search_space_prefix": None, **members}))


def test_declared_space_names_fixes_and_legacy_method():
    """A declaration is searched as <plugin name>_<hyperparameter>; a spec kwarg fixes exactly its own
    hyperparameter (also under a custom prefix); the inherited search_space(trial) suggests the same."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from fusionzoo.registry import REGISTRIES

    declared = {"hidden_mult": CategoricalDistribution([1.0, 3.0]), "dropout": FloatDistribution(0.0, 0.2)}
    cls = _throwaway_fusion("declared_fz", search_space_distributions=classmethod(lambda c: dict(declared)))
    try:
        space = build_space("declared_fz:dropout=0.05", "linear", aux_losses=[])
        assert space.params["declared_fz_hidden_mult"].distribution == declared["hidden_mult"]
        assert space.params["declared_fz_dropout"].fixed == 0.05  # fixed by the spec string
        assert space.rows()[-2]["target"] == "fusion.hidden_mult" and not space.legacy
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
        suggestion = space.suggest(trial)
        assert suggestion.fusion_kwargs["hidden_mult"] == trial.params["declared_fz_hidden_mult"]
        assert suggestion.fusion_kwargs["dropout"] == 0.05 and "declared_fz_dropout" not in trial.params
        trial = optuna.create_study().ask()
        kwargs = cls.search_space(trial)  # the legacy API, built from the declaration
        assert set(kwargs) == {"hidden_mult", "dropout"}
        assert set(trial.params) == {"declared_fz_hidden_mult", "declared_fz_dropout"}
    finally:
        REGISTRIES["fusion"].unregister("declared_fz")
    # a custom prefix (energy_aware_adaptive: "energy_aware_"): its spec kwargs are fixed, not searched
    space = build_space("energy_aware_adaptive:dropout=0.1", "linear", aux_losses=[])
    assert space.params["energy_aware_dropout"].fixed == 0.1


def test_legacy_search_space_plugin_still_tunes():
    """A plugin with only search_space(trial) is recorded once and called at each trial, with [space]
    overrides and fixes applied to what it suggests."""
    from fusionzoo.registry import REGISTRIES

    def legacy(cls, trial):
        return {"hidden_mult": trial.suggest_categorical("width", [1.0, 2.0]), "dropout": 0.0}

    _throwaway_fusion("legacy_fz", search_space=classmethod(legacy))
    try:
        space = build_space("legacy_fz", "mlp", aux_losses=[], overrides={"head_dropout": 0.1})
        assert space.legacy == ("fusion",)
        assert space.rows()[4]["parameter"] == "width" and space.rows()[4]["target"] == "fusion.search_space"
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        seen = set()
        for _ in range(6):
            trial = study.ask()
            suggestion = space.suggest(trial)
            assert suggestion.fusion_kwargs == {"hidden_mult": trial.params["width"], "dropout": 0.0}
            assert suggestion.head_kwargs["dropout"] == 0.1
            seen.add(trial.params["width"])
            study.tell(trial, 0.0)
        assert seen == {1.0, 2.0}
        fixed = build_space("legacy_fz", "linear", aux_losses=[], overrides={"width": 2.0})
        assert fixed.suggest(optuna.create_study().ask()).fusion_kwargs["hidden_mult"] == 2.0
    finally:
        REGISTRIES["fusion"].unregister("legacy_fz")


def test_bad_declaration_is_an_error_naming_the_plugin():
    from optuna.distributions import FloatDistribution

    from fusionzoo.registry import REGISTRIES

    _throwaway_fusion("bad_fz", search_space_distributions={"drop": FloatDistribution(0.0, 0.5)})
    try:
        with pytest.raises(SearchSpaceError, match=r"bad_fz.search_space_distributions.*'drop' is not one"):
            build_space("bad_fz", "linear", aux_losses=[])
    finally:
        REGISTRIES["fusion"].unregister("bad_fz")


def test_python_callers_tune_without_the_command():
    """What a tuned benchmark needs: settings from a config for any grid cell, a worker, the best config."""
    from fusionzoo.config import ConfigError, load_config
    from fusionzoo.tune.study import settings_from_config, trial_config

    overrides = {"tune.trials": 2, "tune.storage": "memory", "tune.sampler": "random", "bench.device": "cpu"}
    overrides.update({f"train.{k}": v for k, v in TINY_RUN.items() if k != "device"})
    config = load_config().with_overrides(overrides)
    with pytest.raises(ConfigError, match="--fusion is required"):
        settings_from_config(config, runs_dir="unused")
    settings = settings_from_config(config, runs_dir="unused", fusion="film", data_factory=DATA_FACTORY)
    report = run_worker(settings.replace(aux_losses=[]), storage=resolve_storage("memory"))
    assert report.counts.complete == 2 and report.study is not None
    best = trial_config(best_trials(report.study)[0])
    assert best["fusion"].startswith("film:") and best["head"].startswith("mlp") and best["epochs"] == 1


# ------------------------------------------------------------------------- seeds, threads, test metrics
@pytest.mark.parametrize(("flags", "threads"), [([], 1), (["--threads", "2"], 2)])
def test_trials_train_at_the_bench_thread_count_and_a_tuning_seed(monkeypatch, tmp_path, flags, threads):
    """``fusionzoo tune`` trains every trial at ``--threads`` (default 1, as bench): on every core a
    small model trained 40-80x slower per epoch on a busy machine. Trials train with seed 10000 +
    --seed, which is no evaluation seed."""
    import torch

    seen = record_training_threads(monkeypatch)
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # what the machine would give a process that sets nothing
    try:
        result = _tune("--fusion", "concat_mlp", "--head", "linear", "--trials", "2", "--storage", "memory",
                       "--seed", "4", "--data-factory", DATA_FACTORY, "--out", str(tmp_path), *TINY_FLAGS,
                       *flags)  # fmt: skip
        assert torch.get_num_threads() == 3  # restored afterwards
    finally:
        torch.set_num_threads(before)
    assert result.exit_code == 0, result.output
    assert seen == [(10_004, threads)] * 2


def test_export_refuses_seeds_that_repeat_the_tuning_seed(tmp_path):
    result = _tune("--fusion", "concat_mlp", "--storage", "memory", "--export", str(tmp_path / "b.toml"),
                   "--export-seeds", "0,10000", "--data-factory", DATA_FACTORY)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "contain 10000, the seed every trial trains with" in result.output


def test_summary_hides_test_metrics_unless_asked(tmp_path):
    """The best trials are shown by their validation score; their test score only with --show-test."""
    db = f"sqlite:///{tmp_path / 'optuna.db'}"
    common = ["tune", "--fusion", "concat_mlp", "--head", "linear", "--trials", "2", "--storage", db,
              "--study", "s", "--data-factory", DATA_FACTORY, "--out", str(tmp_path / "runs"), *TINY_FLAGS]  # fmt: skip
    wide = {"COLUMNS": "200"}  # no header wraps
    hidden = CliRunner().invoke(main, common, env=wide)
    assert hidden.exit_code == 0, hidden.output
    assert "val_macro_f1 (max)" in hidden.output and "test macro_f1" not in hidden.output
    assert "--show-test" in hidden.output  # the way to see them is named
    shown = CliRunner().invoke(main, [*common, "--show-test"], env=wide)
    assert shown.exit_code == 0, shown.output
    assert "test macro_f1" in shown.output and "selected on the validation split only" in shown.output
    best = best_trials(_load(db, "s"))[0]
    row = next(line for line in shown.output.splitlines() if line.startswith(f"│ {best.number} "))
    assert f"{best.user_attrs['metrics']['test_macro_f1']:.4g}" in row
