"""The layers (pyproject.toml [tool.importlinter], docs/architecture.md): lint-imports keeps them, and the
import-graph counter (benchmarks/perf/import_graph.py) counts what it should on a package made here."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _graph_module():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "benchmarks/perf/import_graph.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


graph = _graph_module()


def _lint_imports(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    env = {**os.environ, "PYTHONPATH": f"{cwd}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [exe, "--no-cache", "--no-logo", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


# a package with three layers (top > mid > low) and known imports:
#   top.cmd -> mid.work (down), mid.work -> low.base (down), low.base -> mid.work (UP, in a function),
#   low.helpers -> top.cmd (UP, at module top), mid.typed -> top.cmd (TYPE_CHECKING only)
FAKE = {
    "fakepkg/__init__.py": "",
    "fakepkg/top/__init__.py": "",
    "fakepkg/top/cmd.py": "from fakepkg.mid import work\n",
    "fakepkg/mid/__init__.py": "",
    "fakepkg/mid/work.py": "from fakepkg.low.base import VALUE\n",
    "fakepkg/mid/typed.py": """\
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from fakepkg.top import cmd
        """,
    "fakepkg/low/__init__.py": "",
    "fakepkg/low/base.py": """\
        VALUE = 1

        def late():
            from fakepkg.mid.work import VALUE as again
            return again
        """,
    "fakepkg/low/helpers.py": "from . import base\nfrom ..top import cmd\n",
}
CONFIG = """\
    [tool.importlinter]
    root_package = "fakepkg"
    exclude_type_checking_imports = true

    [[tool.importlinter.contracts]]
    name = "fake layers"
    type = "layers"
    containers = ["fakepkg"]
    layers = ["top", "mid", "low"]
    """


def test_the_package_keeps_its_layers():
    """lint-imports over fusionzoo with the pyproject contracts: a lower layer importing a higher one
    (other than the listed, commented exceptions) fails here."""
    result = _lint_imports(ROOT, "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_lint_imports_fails_on_an_upward_import(tmp_path):
    _write(tmp_path, {**FAKE, "pyproject.toml": CONFIG})
    result = _lint_imports(tmp_path, "pyproject.toml")
    assert result.returncode != 0
    assert "fakepkg.low.helpers -> fakepkg.top.cmd" in result.stdout
    assert "fakepkg.low.base -> fakepkg.mid.work" in result.stdout
    assert "fakepkg.mid.typed" not in result.stdout  # TYPE_CHECKING imports never run


def test_the_counter_on_a_tiny_package(tmp_path):
    _write(tmp_path, {**FAKE, "pyproject.toml": CONFIG})
    layers = graph.layers_from_pyproject(tmp_path / "pyproject.toml")
    assert layers == [["fakepkg.low"], ["fakepkg.mid"], ["fakepkg.top"]]
    g = graph.scan(tmp_path, "fakepkg", layers)
    edges = {(i.importer, i.imported, i.in_function) for i in g.runtime}
    assert edges == {
        ("fakepkg.top.cmd", "fakepkg.mid.work", False),  # `from pkg import module` is the module
        ("fakepkg.mid.work", "fakepkg.low.base", False),
        ("fakepkg.low.base", "fakepkg.mid.work", True),
        ("fakepkg.low.helpers", "fakepkg.low.base", False),  # relative imports resolved
        ("fakepkg.low.helpers", "fakepkg.top.cmd", False),
    }
    summary = g.summary()
    assert summary["internal imports"] == 5 and summary["in functions"] == 1
    assert summary["TYPE_CHECKING only"] == 1
    assert {(i.importer, i.imported) for i in g.upward()} == {
        ("fakepkg.low.base", "fakepkg.mid.work"),
        ("fakepkg.low.helpers", "fakepkg.top.cmd"),
    }
    assert g.cycles() == [["fakepkg.low.base", "fakepkg.mid.work"]]
    assert summary["cycles"] == 1 and summary["largest cycle"] == 2
    assert summary["largest module"] == "fakepkg.low.base (5 lines)"


def test_a_longer_cycle_is_one_component(tmp_path):
    _write(
        tmp_path,
        {
            "ring/__init__.py": "",
            "ring/a.py": "import ring.b\n",
            "ring/b.py": "import ring.c\n",
            "ring/c.py": "def f():\n    import ring.a\n",
            "ring/d.py": "import ring.a\n",  # imports into the ring but is not on it
        },
    )
    assert graph.scan(tmp_path, "ring").cycles() == [["ring.a", "ring.b", "ring.c"]]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_counter_and_contract_list_the_same_upward_imports():
    """Every upward import the counter finds is one of the contract's listed exceptions (at most 10),
    every module has a layer, and the one import cycle left is launch's dispatch to the eval tasks."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    ignored = {tuple(s.replace(" ", "").split("->")) for s in config["contracts"][0]["ignore_imports"]}
    g = graph.scan(ROOT, "fusionzoo", graph.layers_from_pyproject(ROOT / "pyproject.toml"))
    assert {(i.importer, i.imported) for i in g.upward()} <= ignored
    assert len(ignored) <= 10
    assert set(g.unlayered()) <= {"fusionzoo", "fusionzoo.__main__", "fusionzoo.presets"}
    assert g.cycles() in ([], [["fusionzoo.evaluation.tasks", "fusionzoo.launch.base"]])
