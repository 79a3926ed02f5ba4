"""The typed config sections: ``[train]`` is RunConfig's fields (typed as RunConfig declares them, checked by
RunConfig), presets build the same RunConfigs as before the typing, and reading a config loads no torch."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from fusionzoo.config import (
    PER_RUN_FIELDS,
    ConfigError,
    define_train_section,
    load_config,
    preset_names,
    resolve_preset,
    tomllib,
)
from fusionzoo.train.config import RunConfig


def test_train_section_has_every_shared_runconfig_field():
    section = define_train_section()
    shared = {f.name for f in dataclasses.fields(RunConfig)} - set(PER_RUN_FIELDS)
    assert set(section.model_fields) == shared
    assert section.model_fields["dim"].annotation == int | None
    assert section.model_fields["loss_weights"].annotation == dict[str, float] | None


@pytest.mark.parametrize("name", preset_names())
def test_presets_build_the_runconfig_of_their_train_table(name):
    """Typing [train] changes no run: the RunConfig (and so the run identity) is the raw table's."""
    raw = tomllib.loads(resolve_preset(name)[0])
    config = load_config(name)
    bench = raw.get("bench", {})
    expected = RunConfig.from_dict(
        {**raw.get("train", {}), "mode": bench.get("mode", "frozen"), "device": bench.get("device", "auto")}
    )
    assert config.run_config() == expected
    assert config.run_config().config_hash() == expected.config_hash()
    assert config.to_toml_dict()["train"] == raw.get("train", {})  # unset fields stay unset


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('dim = "x"', r"\[train\] dim: Input should be a valid integer"),
        ("dim = 0", r"\[train\]: invalid RunConfig: dim must be a positive integer, got 0"),
        ("warmup = 1.5", r"warmup is a fraction of the steps in \[0, 1\)"),
        ("seed = 1", r"seed are set per run by the grid"),
        ("learning_rate = 1", r"unknown key 'learning_rate' in \[train\]; valid: .*\blr\b"),
        ('metric = "auc"', r"no registered metric writes the column 'auc' \(did you mean 'auroc'\?\)"),
    ],
)
def test_bad_train_values_name_the_key(tmp_path, table, message):
    preset = tmp_path / "bad.toml"
    preset.write_text(f"[train]\n{table}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(preset)


def test_train_values_are_typed_and_overridable(tmp_path):
    preset = tmp_path / "typed.toml"
    preset.write_text('[train]\nloss_weights = "contrastive=0.5"\nlr = 1\n')
    config = load_config(preset)
    assert config.train.loss_weights == {"contrastive": 0.5} and config.train.lr == 1.0
    changed = config.with_overrides({"train.epochs": 3})
    assert changed.train.epochs == 3 and changed.run_config().epochs == 3
    assert config.train.epochs is None and config.run_config().epochs == RunConfig().epochs


def test_reading_a_config_loads_no_torch():
    code = "import sys, fusionzoo.config as c; c.resolve_preset('quick'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_pruner_options_are_those_of_the_pruner(tmp_path):
    preset = tmp_path / "pruner.toml"
    preset.write_text('[tune]\npruner = "hyperband"\n[pruner]\nreduction_factor = 2\nmax_resource = "auto"\n')
    assert load_config(preset).pruner.values() == {"reduction_factor": 2, "max_resource": "auto"}
    for table, message in (
        ("[pruner]\nmin_resource = 1\n", r"\[pruner\] min_resource is not an option of the median pruner"),
        ("[pruner]\nn_startup = 1\n", r"unknown key 'n_startup' in \[pruner\]; valid: .*n_startup_trials"),
        ("[pruner]\nn_startup_trials = -1\n", r"\[pruner\] n_startup_trials: Input should be greater"),
        (
            '[tune]\npruner = "none"\n[pruner]\nn_warmup_steps = 1\n',
            r"of the none pruner .*its options: none",
        ),
    ):
        preset.write_text(table)
        with pytest.raises(ConfigError, match=message):
            load_config(preset)


def test_pruner_options_reach_the_pruner():
    from fusionzoo.tune.study import make_pruner, settings_from_config

    config = load_config("quick").with_overrides({"tune.fusion": "film"})
    config = config.model_copy(update={"pruner": config.pruner.model_copy(update={"n_startup_trials": 7})})
    settings = settings_from_config(config, runs_dir="unused")
    assert settings.pruner_options == {"n_startup_trials": 7}
    assert make_pruner("median", settings.pruner_options, 3, False)._n_startup_trials == 7
