"""``fusionzoo list`` end to end: CliRunner and the installed script as a real subprocess."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from click.testing import CliRunner

from fusionzoo import registry
from fusionzoo.cli import main

BUILTIN_FUSIONS = {
    "concat_mlp", "gated", "film", "cross_attention", "shomr", "fluid", "modality_dropout", "transformer_concat",
    "energy_aware_adaptive", "image_only", "text_only", "early_fusion", "embracenet", "late_fusion", "tfn",
    "mult", "mbt",
}  # fmt: skip


def test_list_fusions_shows_every_builtin_and_the_registry_plugin():
    result = CliRunner().invoke(main, ["list", "fusions"])
    assert result.exit_code == 0, result.output
    for name in BUILTIN_FUSIONS | {"lmf"}:
        assert f"│ {name} " in result.output, name
    lmf_row = next(line for line in result.output.splitlines() if "│ lmf " in line)
    assert "fusionzoo-lmf" in lmf_row and "vector" in lmf_row
    fluid_row = next(line for line in result.output.splitlines() if "│ fluid " in line)
    assert "token" in fluid_row and "│ 2 " in fluid_row  # two bottleneck tokens
    late_row = next(line for line in result.output.splitlines() if "│ late_fusion " in line)
    assert "token" in late_row and "│ 2 " in late_row  # one decision token per modality


def test_list_heads_and_pattern():
    result = CliRunner().invoke(main, ["list", "heads"])
    assert result.exit_code == 0
    assert all(f"│ {h} " in result.output for h in ("linear", "mlp", "moe"))
    result = CliRunner().invoke(main, ["list", "fusions", "*only"])
    assert "heads (" not in result.output and "fusions (2)" in result.output


def test_list_with_local_plugin_and_bad_plugin(tmp_path):
    plugin = tmp_path / "cli_local_head.py"
    plugin.write_text(
        "from fusionzoo import register_head\n"
        "from fusionzoo.heads.linear import LinearHead\n\n"
        "@register_head(name='cli_local_head')\n"
        "class CliLocalHead(LinearHead):\n"
        "    description = 'a head from a local file'\n"
    )
    result = CliRunner().invoke(main, ["list", "heads", "--plugin", str(plugin)])
    assert result.exit_code == 0, result.output
    assert "cli_local_head" in result.output and "a head from a local file" in result.output
    result = CliRunner().invoke(main, ["list", "--plugin", "no_such_plugin_module_xyz"])
    assert result.exit_code == 2
    assert "no_such_plugin_module_xyz" in result.output and "cannot be imported" in result.output


def test_list_rejects_unknown_kind():
    result = CliRunner().invoke(main, ["list", "models"])
    assert result.exit_code == 2 and "fusions" in result.output


def test_installed_script_lists_the_registry():
    exe = shutil.which("fusionzoo")
    assert exe, "the fusionzoo console script is not installed"
    proc = subprocess.run([exe, "list", "fusions"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"fusions ({len(registry.list_fusions())})" in proc.stdout


def row(output, name):
    return next(line for line in output.splitlines() if line.startswith(f"│ {name} "))


def last_cell(output, name):
    """The last column of ``name``'s row, its wrapped continuation lines joined (width-independent)."""
    lines = output.splitlines()
    start = lines.index(row(output, name))
    parts = [lines[start].split("│")[-2].strip()]
    for line in lines[start + 1 :]:
        cells = line.split("│")
        if len(cells) < 3 or cells[1].strip():  # a border line or the next row
            break
        parts.append(cells[-2].strip())
    return " ".join(part for part in parts if part)


def test_list_every_kind_with_its_facts():
    result = CliRunner().invoke(main, ["list", "all"])
    assert result.exit_code == 0, result.output
    for kind in ("fusions", "heads", "datasets", "metrics", "protocols", "reporters", "launchers"):
        assert f"{kind} (" in result.output, kind
    datasets = CliRunner().invoke(main, ["list", "datasets"]).output
    assert "│ yes " in row(datasets, "synth") and "built locally" in row(datasets, "synth")
    assert "timm:vit_base_patch16_224" in row(datasets, "glami1m") and "│ no " in row(datasets, "glami1m")
    assert "root" in row(datasets, "glami1m") and "csv" in row(datasets, "csv")
    metrics = CliRunner().invoke(main, ["list", "metrics"]).output
    assert "acc_geo_*" in row(metrics, "per_geo") and "│ max " in row(metrics, "per_geo")
    assert "macro_f1" in row(metrics, "macro_prf")
    assert "│ terminal " in row(CliRunner().invoke(main, ["list", "reporters"]).output, "leaderboard")
    assert "in this process" in row(CliRunner().invoke(main, ["list", "launchers"]).output, "local")


@pytest.mark.parametrize(
    ("what", "pattern", "shown", "hidden"),
    [
        ("datasets", "g*", "glami1m", "synth"),
        ("metrics", "acc*", "accuracy", "top5"),
        ("reporters", "leader*", "leaderboard", None),
        ("launchers", "nothing*", None, "local"),
        ("protocols", "*", None, None),
    ],
)
def test_list_pattern_works_for_every_kind(what, pattern, shown, hidden):
    result = CliRunner().invoke(main, ["list", what, pattern])
    assert result.exit_code == 0, result.output
    cells = [line.split("│")[1].strip() for line in result.output.splitlines() if line.startswith("│ ")]
    names = [c for c in cells if c]  # wrapped cells continue on lines with an empty name
    expected = registry.list_plugins(what, pattern)
    assert names == expected and f"{what} ({len(expected)})" in result.output
    assert shown is None or shown in names
    assert hidden is None or hidden not in names


def test_a_broken_plugin_of_any_kind_is_a_row_with_its_error(tmp_path, clean_registry):
    plugin = tmp_path / "broken_kinds.py"
    plugin.write_text(
        "from fusionzoo.datasets.base import DatasetBackend, register_dataset\n"
        "from fusionzoo.protocols.base import Protocol, register_protocol\n\n"
        "@register_dataset\n"
        "class BrokenOptions(DatasetBackend):\n"
        "    name = 'broken_options'\n"
        "    description = 'option_names raises'\n"
        "    @classmethod\n"
        "    def option_names(cls):\n"
        "        raise RuntimeError('options table is missing')\n\n"
        "@register_protocol\n"
        "class BrokenLevels(Protocol):\n"
        "    name = 'broken_levels'\n"
        "    def levels(self):\n"
        "        raise ValueError('no levels configured')\n"
    )
    datasets = CliRunner().invoke(main, ["list", "datasets", "--plugin", str(plugin)])
    assert datasets.exit_code == 0, datasets.output
    broken = row(datasets.output, "broken_options")
    assert "│ error " in broken and last_cell(datasets.output, "broken_options") == (
        "RuntimeError: options table is missing"
    )
    assert "local:" in broken and "│ synth " in datasets.output  # the others still list
    protocols = CliRunner().invoke(main, ["list", "protocols"])
    assert last_cell(protocols.output, "broken_levels") == "ValueError: no levels configured"


def test_an_entry_point_that_fails_to_import_is_a_row(monkeypatch):
    import importlib.metadata

    original = importlib.metadata.entry_points
    broken = importlib.metadata.EntryPoint("broken_metric", "no_such_module_xyz:Metric", "fusionzoo.metrics")

    def entry_points(**kwargs):
        found = list(original(**kwargs))
        return [*found, broken] if kwargs.get("group") == "fusionzoo.metrics" else found

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    registry.refresh_plugins()
    try:
        with pytest.warns(RuntimeWarning, match="broken_metric"):
            result = CliRunner().invoke(main, ["list", "metrics"])
        assert result.exit_code == 0, result.output
        line = row(result.output, "broken_metric")
        assert "failed to import" in line and "ModuleNotFoundError" in line
        assert "│ accuracy " in result.output
    finally:
        monkeypatch.undo()
        registry.refresh_plugins()
    assert "broken_metric" not in registry.REGISTRIES["metric"].failures()


def test_installed_script_lists_datasets():
    exe = shutil.which("fusionzoo")
    assert exe, "the fusionzoo console script is not installed"
    proc = subprocess.run([exe, "list", "datasets"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"datasets ({len(registry.list_plugins('dataset'))})" in proc.stdout and "│ synth " in proc.stdout
