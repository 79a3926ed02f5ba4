"""One error root: every exception class of the package derives from FusionzooError (keeping its builtin
base), its class says the exit code, and the command line maps it in one place (fusionzoo.cli.errors)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from fusionzoo.cli.errors import Command, Group, about, checking_input, click_error
from fusionzoo.errors import FusionzooError, InputError

PACKAGE = Path(__file__).resolve().parents[1] / "fusionzoo"


def _exception_classes() -> list[tuple[str, str]]:
    """(module, class) of every class defined in the package whose bases name an Error/Exception."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b) for b in node.bases]
                if any(b.endswith(("Error", "Exception")) for b in bases):
                    found.append((module, node.name))
    return found


# signals the tuner raises and catches itself (like optuna.TrialPruned), never shown to a user
CONTROL_FLOW = {
    ("fusionzoo.tune.budget", "BudgetExhausted"),
    ("fusionzoo.tune.objective", "TrialDiverged"),
    ("fusionzoo.train.stacked", "Unbatchable"),  # a seed group falls back to one run at a time
}


def test_every_exception_class_has_the_one_root():
    classes = _exception_classes()
    assert len(classes) >= 20  # ConfigError, RegistryError, DataError, ... (the scan finds them)
    assert set(classes) >= CONTROL_FLOW
    for module, name in sorted(set(classes) - CONTROL_FLOW):
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, FusionzooError), f"{module}.{name} does not derive from FusionzooError"
        assert cls.exit_code in (1, 2), f"{module}.{name}"


def test_old_names_and_builtin_bases_are_kept():
    from fusionzoo.config import ConfigError
    from fusionzoo.data import DataError
    from fusionzoo.io import DiskFullError
    from fusionzoo.registry import RegistryError
    from fusionzoo.results.store import ResultsError, ResultsSchemaError
    from fusionzoo.testing import ContractError
    from fusionzoo.tune import TuneError

    assert issubclass(ConfigError, ValueError) and issubclass(RegistryError, ValueError)
    assert issubclass(DataError, ValueError) and issubclass(TuneError, ValueError)
    assert issubclass(ContractError, AssertionError) and issubclass(ResultsError, RuntimeError)
    disk = DiskFullError(28, "the disk is full")
    assert isinstance(disk, OSError) and disk.errno == 28 and str(disk) == "the disk is full"
    # what the user gave is wrong: 2; the work could not be done: 1
    assert ConfigError.exit_code == RegistryError.exit_code == ResultsError.exit_code == 2
    assert DataError.exit_code == TuneError.exit_code == DiskFullError.exit_code == 1
    assert ResultsSchemaError.exit_code == 1  # the right folder, written by another version


def test_click_error_maps_exit_code_and_hint():
    hinted = click_error(InputError("no such folder", param_hint="--out"))
    assert isinstance(hinted, click.BadParameter) and hinted.exit_code == 2
    assert (
        hinted.format_message() == "Invalid value for --out: no such folder"
    )  # as click.BadParameter(param_hint=)
    usage = click_error(InputError("bad spec"))
    assert isinstance(usage, click.UsageError) and usage.exit_code == 2
    failed = click_error(FusionzooError("the disk is full", param_hint="--out"))
    assert type(failed) is click.ClickException and failed.exit_code == 1
    assert failed.format_message() == "the disk is full"


def _value(ctx, param, value):
    if value == "bad":
        raise InputError(f"{value!r} is not a value", param_hint=param.get_error_hint(ctx))
    return value


@click.group(cls=Group)
def group():
    pass


@group.command("run")
@click.option("--value", callback=_value, default="ok")
@click.option("--what", default="")
def run_cmd(value, what):
    if what == "fail":
        raise FusionzooError("the run failed: fix X and rerun")
    if what == "check":
        with checking_input():
            raise ValueError("dim must be a multiple of heads")  # a plugin's constructor refusing
    if what == "out":
        with about("--out"):
            raise InputError("is a file, not a directory")
    if what == "bug":
        raise RuntimeError("a bug keeps its traceback")
    click.echo(f"value {value}")


@pytest.mark.parametrize(
    "args, code, text",
    [
        (["run"], 0, "value ok"),
        (["run", "--value", "bad"], 2, "Invalid value for '--value': 'bad' is not a value"),  # while parsing
        (["run", "--what", "fail"], 1, "Error: the run failed: fix X and rerun"),
        (["run", "--what", "check"], 2, "Error: dim must be a multiple of heads"),
        (["run", "--what", "out"], 2, "Invalid value for --out: is a file, not a directory"),
    ],
)
def test_commands_map_errors_in_one_place(args, code, text):
    result = CliRunner().invoke(group, args)
    assert result.exit_code == code, result.output
    assert text in result.output
    assert "Traceback" not in result.output


def test_a_bug_is_not_turned_into_a_message():
    result = CliRunner().invoke(group, ["run", "--what", "bug"])
    assert isinstance(result.exception, RuntimeError)


def test_every_command_maps_errors():
    from fusionzoo.cli import LazyGroup, main

    assert isinstance(main, LazyGroup) and isinstance(main, Group)
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        assert isinstance(command, Command | Group), name
        for sub in getattr(command, "commands", {}).values():
            assert isinstance(sub, Command), f"{name} {sub.name}"


def test_a_data_error_exits_before_any_work_in_a_real_process(tmp_path):
    """An unknown dataset option: exit 2 naming it and the valid ones, no traceback (real subprocess)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fusionzoo.cli",
            "data",
            "status",
            "--dataset",
            "synth",
            "--data-option",
            "rot=1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "unknown synth option(s) rot" in result.stderr and "Traceback" not in result.stderr
