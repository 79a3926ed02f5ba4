"""``fusionzoo list`` end to end: CliRunner and the installed script as a real subprocess."""

from __future__ import annotations

import shutil
import subprocess

from click.testing import CliRunner

from fusionzoo import registry
from fusionzoo.cli import main

BUILTIN_FUSIONS = {
    "concat_mlp", "gated", "film", "cross_attention", "shomr", "fluid", "modality_dropout", "transformer_concat",
    "energy_aware_adaptive", "image_only", "text_only", "early_fusion", "embracenet",
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
