"""What a newcomer reads agrees with what the code does: --help defaults, launcher descriptions, the docs'
numbers, README commands that write only under runs/, the package metadata, compact spec labels."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fusionzoo.cli import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "fusionzoo" / "presets"


def preset(name: str) -> dict:
    return tomllib.loads((PRESETS / f"{name}.toml").read_text())["train"]


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("command", ["bench", "tune"])
def test_help_shows_the_preset_defaults_of_the_training_flags(command):
    text = flat(CliRunner().invoke(main, [command, "--help"]).output)
    quick, real = preset("quick"), preset("real")
    for name, key in (
        ("--epochs", "epochs"),
        ("--dim", "dim"),
        ("--batch-size", "batch_size"),
        ("--lr", "lr"),
    ):
        if command == "tune" and name == "--lr":
            continue  # tune searches the learning rate
        shown = re.search(rf"{name} [A-Z ]+RANGE .*?\[default: \((.*?)\)", text)
        assert shown, name
        assert shown.group(1).startswith(f"{quick[key]}, quick preset"), (name, shown.group(1))
        if real[key] != quick[key]:
            assert f"{real[key]} with --dataset NAME" in shown.group(1)


def test_eval_threads_help_is_about_evaluation_not_training():
    text = flat(CliRunner().invoke(main, ["eval", "--help"]).output)
    threads = text[text.index("--threads") : text.index("--threads") + 300]
    assert "for training" not in threads and "evaluation" in threads


def test_local_launcher_is_described_the_same_in_list_help_and_docs():
    listed = flat(CliRunner().invoke(main, ["list", "launchers"]).output)
    helped = flat(CliRunner().invoke(main, ["bench", "--help"]).output)
    assert "--jobs" in listed[listed.index("local") : listed.index("local") + 200]
    launcher = helped[helped.index("--launcher SPEC") : helped.index("--launcher SPEC") + 200]
    assert "one after the other" in launcher and "--jobs N at once" in launcher
    docs = flat((ROOT / "docs" / "benchmarking.md").read_text())
    assert "default `local`: this machine, one after the other in this process, or `--jobs N` at once" in docs


def test_tuning_doc_states_the_quick_preset_epochs():
    text = flat((ROOT / "docs" / "tuning.md").read_text())
    stated = re.search(r"the quick preset: [^)]*`epochs (\d+)`", text)
    assert stated and int(stated.group(1)) == preset("quick")["epochs"]


def readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            for part in line.split("#")[0].split("&&"):
                words = shlex.split(part)
                if words and words[0] == "fusionzoo":
                    commands.append(words)
    return commands


def test_readme_commands_write_only_under_runs():
    """Files a README command creates in the current directory (the repository) go under runs/."""
    commands = readme_commands()
    assert len(commands) > 15
    written = []
    for words in commands:
        for flag_, value in zip(words, words[1:], strict=False):
            if flag_ in ("--out", "--export", "--storage"):
                written.append(value)
            if flag_ == "--mlflow" or flag_ == "--storage":
                written += [m for m in re.findall(r"sqlite:///([^ ]+)", value)]
    assert any("mlflow" in w for w in written) and any(w.endswith(".toml") for w in written)
    for path in written:
        assert path.startswith("runs/") or path.startswith("/"), path


def test_license_is_an_spdx_string_and_the_build_backend_reads_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"  # a table is deprecated (setuptools warned 4x)
    setuptools = next(r for r in project["build-system"]["requires"] if r.startswith("setuptools"))
    assert int(setuptools.split(">=")[1].split(".")[0]) >= 77  # PEP 639 license expressions


def test_readme_names_a_cpu_only_install_and_no_build_machine_version():
    text = (ROOT / "README.md").read_text()
    assert "download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1" in text
    assert "2.13.0+cpu" not in text


def test_spec_labels_show_compact_floats_and_the_identity_stays_exact():
    from fusionzoo.report.common import config_labels, display_spec

    spec = "concat_mlp:dropout=0.44591234567891,hidden_mult=2.0"
    assert display_spec(spec) == "concat_mlp:dropout=0.4459,hidden_mult=2.0"
    assert display_spec("mlp:lr=1.23456789e-05") == "mlp:lr=1.235e-05"
    assert display_spec("fluid:layers=1,queries=8") == "fluid:layers=1,queries=8"
    import pandas as pd

    labels = config_labels(
        pd.DataFrame({"config_id": ["a"], "fusion": [spec], "head": ["mlp:dropout=0.26412345678"]})
    )
    assert labels == {"a": "concat_mlp:dropout=0.4459,hidden_mult=2.0"}
