"""The internal import graph of fusionzoo: imports, upward imports against the layers, cycles.

    python benchmarks/perf/import_graph.py                  # the working tree
    python benchmarks/perf/import_graph.py --rev main       # a git revision (read with `git archive`)
    python benchmarks/perf/import_graph.py --rev main --rev HEAD --list upward

Every ``import``/``from ... import`` of a ``fusionzoo`` module is one internal import (an edge from the
importing module to the imported one; ``from pkg import name`` is an import of ``pkg.name`` when that is
a module, else of ``pkg``). An import is *upward* when the importer's layer is below the imported
module's layer in :data:`LAYERS` (lowest first; a module belongs to the layer of its longest listed
prefix). A cycle is a strongly connected component of more than one module (Tarjan), counted over all
imports, in functions or not, since both run. "In functions" counts imports inside a ``def`` (lazy
imports); ``if TYPE_CHECKING:`` imports are reported apart and left out of the graph (they never run).

The layers below are the ones ``[tool.importlinter]`` in pyproject.toml enforces; the counter reads the
same list from there when it can, so the two never disagree.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "fusionzoo"
# modules of older revisions that no longer exist, counted in the layer of their successor (--rev main)
LEGACY = {f"fusionzoo.cli_{name}": "fusionzoo.cli" for name in ("common", "options", "list", "report")}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    in_function: bool
    type_checking: bool


@dataclass
class Graph:
    modules: dict[str, int]  # module -> number of lines
    imports: list[Import]
    layers: list[list[str]] = field(default_factory=list)

    @property
    def runtime(self) -> list[Import]:
        return [i for i in self.imports if not i.type_checking and i.importer != i.imported]

    def layer_of(self, module: str) -> int | None:
        """The index (0 = lowest) of the layer holding ``module``: its longest matching prefix."""
        module = LEGACY.get(module, module)
        best, best_len = None, -1
        for index, layer in enumerate(self.layers):
            for prefix in layer:
                if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                    best, best_len = index, len(prefix)
        return best

    def upward(self) -> list[Import]:
        out = []
        for imp in self.runtime:
            low, high = self.layer_of(imp.importer), self.layer_of(imp.imported)
            if low is not None and high is not None and low < high:
                out.append(imp)
        return out

    def unlayered(self) -> list[str]:
        return sorted(m for m in self.modules if self.layer_of(m) is None)

    def cycles(self) -> list[list[str]]:
        """Strongly connected components of more than one module, largest first (Tarjan, iterative)."""
        edges: dict[str, set[str]] = {m: set() for m in self.modules}
        for imp in self.runtime:
            if imp.imported in edges:
                edges[imp.importer].add(imp.imported)
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        on_stack: set[str] = set()
        stack: list[str] = []
        found: list[list[str]] = []
        counter = 0
        for root in sorted(edges):
            if root in index:
                continue
            work = [(root, iter(sorted(edges[root])))]
            index[root] = low[root] = counter
            counter += 1
            stack.append(root)
            on_stack.add(root)
            while work:
                node, children = work[-1]
                child = next(children, None)
                if child is not None:
                    if child not in index:
                        index[child] = low[child] = counter
                        counter += 1
                        stack.append(child)
                        on_stack.add(child)
                        work.append((child, iter(sorted(edges[child]))))
                    elif child in on_stack:
                        low[node] = min(low[node], index[child])
                    continue
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
        return sorted(found, key=lambda c: (-len(c), c))

    def summary(self) -> dict[str, object]:
        runtime = self.runtime
        largest = max(self.modules.items(), key=lambda kv: kv[1]) if self.modules else ("", 0)
        cycles = self.cycles()
        return {
            "modules": len(self.modules),
            "lines": sum(self.modules.values()),
            "internal imports": len(runtime),
            "in functions": sum(i.in_function for i in runtime),
            "TYPE_CHECKING only": sum(i.type_checking for i in self.imports),
            "upward imports": len(self.upward()),
            "cycles": len(cycles),
            "largest cycle": len(cycles[0]) if cycles else 0,
            "largest module": f"{largest[0]} ({largest[1]} lines)",
            "modules over 500 lines": sum(n > 500 for n in self.modules.values()),
        }


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Visitor(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, known: set[str], package: str) -> None:
        self.module, self.is_package, self.known, self.package = module, is_package, known, package
        self.depth_function = 0
        self.depth_type_checking = 0
        self.found: list[Import] = []

    def _add(self, target: str, line: int) -> None:
        self.found.append(
            Import(self.module, target, line, self.depth_function > 0, self.depth_type_checking > 0)
        )

    def _function(self, node: ast.AST) -> None:
        self.depth_function += 1
        self.generic_visit(node)
        self.depth_function -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self.depth_type_checking += 1
            for child in node.body:
                self.visit(child)
            self.depth_type_checking -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def _resolve(self, target: str) -> str | None:
        """The known module ``target`` names, or its nearest known parent."""
        while target and target not in self.known:
            target = target.rpartition(".")[0]
        return target or None

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == self.package or alias.name.startswith(self.package + "."):
                target = self._resolve(alias.name)
                if target:
                    self._add(target, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.module.split(".")
            if not self.is_package:
                base = base[:-1]
            base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        if not (source == self.package or source.startswith(self.package + ".")):
            return
        targets = set()
        for alias in node.names:
            candidate = f"{source}.{alias.name}"
            targets.add(candidate if candidate in self.known else self._resolve(source))
        for target in sorted(t for t in targets if t):
            self._add(target, node.lineno)


def scan(root: Path, package: str = PACKAGE, layers: list[list[str]] | None = None) -> Graph:
    """The import graph of the package ``root/package`` (a source tree; nothing is imported)."""
    files = sorted((root / package).rglob("*.py"))
    names = {_module_name(root, f): f for f in files}
    modules: dict[str, int] = {}
    imports: list[Import] = []
    for name, path in names.items():
        source = path.read_text(encoding="utf-8")
        modules[name] = source.count("\n") + (0 if source.endswith("\n") or not source else 1)
        visitor = _Visitor(name, path.name == "__init__.py", set(names), package)
        visitor.visit(ast.parse(source, filename=str(path)))
        imports.extend(visitor.found)
    return Graph(modules, imports, layers if layers is not None else [])


def layers_from_pyproject(pyproject: Path) -> list[list[str]]:
    """The layers of the first ``layers`` contract in ``[tool.importlinter]``, lowest first."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    if not pyproject.exists():
        return []
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    contracts = config.get("tool", {}).get("importlinter", {}).get("contracts", [])
    for contract in contracts:
        if contract.get("type") == "layers":
            container = (contract.get("containers") or [""])[0]
            out = []
            for entry in reversed(contract["layers"]):  # import-linter lists the highest first
                names = [n.strip("() ") for n in entry.replace("|", ":").split(":")]
                out.append([f"{container}.{n}" if container else n for n in names if n])
            return out
    return []


def _checkout(rev: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", rev, PACKAGE, "pyproject.toml"],
        check=True,
        capture_output=True,
    ).stdout
    with tempfile.TemporaryFile() as buffer:
        buffer.write(archive)
        buffer.seek(0)
        with tarfile.open(fileobj=buffer) as tar:
            tar.extractall(into, filter="data")
    return into


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", action="append", default=[], help="git revision(s) to measure")
    parser.add_argument("--root", type=Path, default=None, help="a source tree (default: this repo)")
    parser.add_argument(
        "--layers-from", type=Path, default=REPO / "pyproject.toml", help="pyproject.toml with the layers"
    )
    parser.add_argument("--list", choices=["upward", "cycles", "functions", "unlayered"], action="append")
    args = parser.parse_args(argv)
    layers = layers_from_pyproject(args.layers_from)
    if not layers:
        print(f"no layers contract in {args.layers_from}; upward imports are not counted", file=sys.stderr)
    graphs: dict[str, Graph] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rev in args.rev:
            graphs[rev] = scan(_checkout(rev, Path(tmp) / rev.replace("/", "_")), layers=layers)
        if not args.rev:
            graphs["working tree"] = scan(args.root or REPO, layers=layers)
    keys = list(next(iter(graphs.values())).summary())
    rows = {label: g.summary() for label, g in graphs.items()}
    width = max(map(len, keys))
    print(f"{'':{width}}  " + "  ".join(f"{label:>28}" for label in rows))
    for key in keys:
        print(f"{key:{width}}  " + "  ".join(f"{str(r[key]):>28}" for r in rows.values()))
    for label, graph in graphs.items():
        for what in args.list or []:
            print(f"\n{what} ({label}):")
            if what == "upward":
                for imp in graph.upward():
                    print(f"  {imp.importer}:{imp.line} -> {imp.imported}")
                by_pair = Counter(
                    (graph.layer_of(i.importer), graph.layer_of(i.imported)) for i in graph.upward()
                )
                print(
                    "  by layer (from -> to): " + ", ".join(f"{a}->{b}: {n}" for (a, b), n in by_pair.items())
                )
            elif what == "cycles":
                for cycle in graph.cycles():
                    print(f"  {len(cycle)}: " + " ".join(cycle))
            elif what == "functions":
                for imp in graph.runtime:
                    if imp.in_function:
                        print(f"  {imp.importer}:{imp.line} -> {imp.imported}")
            elif what == "unlayered":
                print("  " + " ".join(graph.unlayered()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
