"""The parts of a run's identity that describe the code and the regime that train it.

**code** — a content hash per plugin a run uses: its fusion, its head, its train-time protocol, its
dataset backend (a linear-probe run: the probe's module and the dataset backend)::

    code = "fusion film=<12 hex>;head mlp=<12 hex>;dataset synth=<12 hex>"

A plugin's hash is the SHA-256 of the source of the module that defines its class plus, followed
through their ``import`` statements (top level and inside functions), the modules it builds on: every
fusionzoo module under ``fusionzoo.layers`` (the shared blocks) and the plugin packages
(``fusionzoo.fusions``, ``heads``, ``protocols``, ``datasets``, ``data``, ``baselines``), and for a
third-party plugin the modules of its own top-level package. The same rule holds for built-ins,
``--plugin`` files and entry-point plugins, so editing ``fusions/film.py``, ``layers/mlp.py`` or a
``--plugin`` file makes its runs new runs, and the bench says "not reused: the code of film changed".
Modules are hashed by name and content (never by path), so two checkouts of the same code agree.
What every run shares — the trainer, losses, optimiser, evaluation — is versioned by
:data:`fusionzoo.train.config.TRAINING_SEMANTICS` instead. The hash is of the source files as they
are on disk when the grid is expanded (each bench invocation imports them afresh).

**regime** — ``world=<DDP processes per run>,precision=<fp32|bf16|fp16>``: the precision is the
autocast dtype ``RunConfig.amp`` resolves to on the device the run trains on (AMP runs on CUDA only),
resolved where the grid is expanded. A run that would execute in another regime than its identity
says (e.g. a Ray worker with another GPU) fails with a message instead of mixing
(:func:`check_regime`).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "changed_code",
    "check_regime",
    "code_identity",
    "plugin_hash",
    "regime_changes",
    "run_code",
    "training_regime",
]

SHARED_PACKAGES = (
    "fusionzoo.layers",
    "fusionzoo.fusions",
    "fusionzoo.heads",
    "fusionzoo.protocols",
    "fusionzoo.datasets",
    "fusionzoo.data",
    "fusionzoo.baselines",
)
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}
_IMPORTS: dict[str, list[str]] = {}
_MODULE_FILES: dict[str, Path | None] = {}
_HASHES: dict[str, tuple[str, list[tuple[Path, tuple[int, int]]]]] = {}  # root module -> (hash, files)


def _file_digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _FILE_DIGESTS:
        _FILE_DIGESTS[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _FILE_DIGESTS[key]


def _module_file(name: str) -> Path | None:
    if name not in _MODULE_FILES:
        _MODULE_FILES[name] = _find_module_file(name)
    return _MODULE_FILES[name]


def _find_module_file(name: str) -> Path | None:
    module = sys.modules.get(name)
    origin = getattr(module, "__file__", None)
    if origin is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None
        origin = spec.origin if spec is not None else None
    if not origin or not Path(origin).is_file():
        return None
    return Path(origin)


def _imports(name: str, path: Path, package: str) -> list[str]:
    """The module names ``path`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    key = f"{name}:{_file_digest(path)}"
    if key not in _IMPORTS:
        names: list[str] = []
        for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    try:
                        base = importlib.util.resolve_name("." * node.level + base, package)
                    except (ImportError, ValueError):
                        continue
                names += [base] + [f"{base}.{alias.name}" for alias in node.names]
        _IMPORTS[key] = names
    return _IMPORTS[key]


def _follows(name: str, own_package: str) -> bool:
    if any(name == p or name.startswith(p + ".") for p in SHARED_PACKAGES):
        return True
    return own_package != "fusionzoo" and name.split(".")[0] == own_package


def plugin_hash(obj: Any) -> str:
    """12 hex digits over the source of ``obj``'s module (a class, function or module) and the
    modules it builds on (see the module docstring); ``""`` when it has no source file."""
    root = obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", "")
    cached = _HASHES.get(root)
    if cached is not None and all(_stat(path) == stat for path, stat in cached[1]):
        return cached[0]  # no file of the closure changed since it was hashed
    path = _module_file(root)
    if path is None:
        return ""
    own_package = root.split(".")[0]  # a --plugin file's module has no package: only fusionzoo's blocks
    seen, queue = {root}, [(root, path)]
    found: dict[str, Path] = {}
    while queue:
        name, file = queue.pop()
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        for imported in _imports(name, file, package):
            if imported in seen or not _follows(imported, own_package):
                continue
            seen.add(imported)
            imported_file = _module_file(imported)
            if imported_file is not None:
                found[imported] = imported_file
                queue.append((imported, imported_file))
    digest = hashlib.sha256(b"plugin\0" + _file_digest(path).encode())  # by content: not by path
    for name in sorted(found):
        digest.update(f"\0{name}\0{_file_digest(found[name])}".encode())
    files = [path, *found.values()]
    _HASHES[root] = (digest.hexdigest()[:12], [(f, _stat(f)) for f in files])
    return _HASHES[root][0]


def _stat(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def run_code(config: Any, dataset: str, kind: str = "train") -> str:
    """The ``code`` identity part of one run (module docstring): its plugins' names and hashes."""
    from fusionzoo import registry

    parts: list[tuple[str, str, Any]] = []
    if kind == "probe":
        from fusionzoo.baselines import linear_probe

        parts.append(("probe", linear_probe.PROBE_NAME, linear_probe))
    else:
        head = config.head or config.resolved_head()
        for kind_, spec in (("fusion", config.fusion), ("head", head)):
            name = registry.parse_spec(spec)[0]
            parts.append((kind_, name, registry.get_entry(kind_, name).obj))
        if config.train_protocol:
            name = registry.parse_spec(config.train_protocol.partition("@")[0])[0]
            parts.append(("protocol", name, registry.get_entry("protocol", name).obj))
    if dataset in registry.registry_of("dataset"):
        parts.append(("dataset", dataset, registry.get_entry("dataset", dataset).obj))
    return code_identity(parts)


def code_identity(parts: list[tuple[str, str, Any]]) -> str:
    """``"kind name=hash;..."`` of ``(kind, plugin name, class or module)`` parts."""
    return ";".join(f"{kind} {name}={plugin_hash(obj)}" for kind, name, obj in parts)


def _parse_code(text: str) -> dict[str, str]:
    out = {}
    for item in filter(None, str(text or "").split(";")):
        key, _, digest = item.partition("=")
        out[key] = digest
    return out


def changed_code(old: str, new: str) -> list[str]:
    """The plugin names whose code differs between two ``code`` parts (``[]`` when ``old`` is unknown)."""
    before, after = _parse_code(old), _parse_code(new)
    if not before:
        return []
    return [key.partition(" ")[2] for key in after if key in before and before[key] != after[key]]


# ------------------------------------------------------------------------------------------------- regime
def training_regime(config: Any, world: int = 1) -> str:
    """``world=W,precision=P`` of a run of ``config`` trained by ``world`` processes on this machine."""
    import torch

    from fusionzoo.train.trainer import amp_settings, resolve_device

    try:
        device = resolve_device(config.device)
    except ValueError:  # CUDA named but not visible here: the precision it asks for
        device = torch.device("cuda")
    try:
        dtype, _ = amp_settings(config, device)
    except (RuntimeError, AssertionError):  # no CUDA runtime to ask about bf16 support
        dtype = torch.bfloat16 if config.amp == "bf16" else torch.float16
    precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
    return f"world={int(world)},precision={precision}"


def regime_changes(old: str, new: str) -> str:
    """``"precision fp32 → bf16"``: the regime fields that differ (``""`` when ``old`` is unknown)."""
    before = dict(p.partition("=")[::2] for p in str(old or "").split(",") if p)
    after = dict(p.partition("=")[::2] for p in str(new or "").split(",") if p)
    if not before:
        return ""
    return ", ".join(f"{k} {before[k]} → {v}" for k, v in after.items() if k in before and before[k] != v)


def check_regime(spec: Any) -> None:
    """Raise ``RuntimeError`` when this process would train ``spec`` in another regime than its
    identity says (another world size or precision): a different run must not be recorded as it."""
    expected = spec.identity.get("regime", "")
    if getattr(spec, "kind", "train") != "train" or not expected:
        return
    import torch.distributed as dist

    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    actual = training_regime(spec.config, world)
    if actual != expected:
        raise RuntimeError(
            f"this process would train {spec.label} with {actual}, but its run identity (resolved where "
            f"the grid was expanded) says {expected}; set --device and [train] amp explicitly so every "
            "machine trains the same way"
        )
