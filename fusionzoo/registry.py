"""Plugin registry for fusion modules and heads (timm-style decorators, xarray-style entry points).

Built-ins register with ``@register_fusion`` / ``@register_head``. Third-party distributions declare an
entry point in the groups ``fusionzoo.fusions`` / ``fusionzoo.heads``; those are loaded lazily, once, on
the first lookup (``refresh_plugins()`` clears the cache). A plugin that fails to import becomes a
``RuntimeWarning`` naming its distribution, never a crash. A name that a built-in already has stays the
built-in's, with a warning.

Spec strings name a plugin and its hyperparameters: ``fluid``, ``fluid:gating=false,queries=16``.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

__all__ = [
    "KINDS",
    "PluginEntry",
    "RegistryError",
    "create_fusion",
    "create_head",
    "format_spec",
    "get_fusion_class",
    "get_head_class",
    "get_entry",
    "hyperparameters",
    "list_fusions",
    "list_heads",
    "load_plugin",
    "parse_spec",
    "refresh_plugins",
    "register_fusion",
    "register_head",
]

KINDS = ("fusion", "head")
ENTRY_POINT_GROUPS = {"fusion": "fusionzoo.fusions", "head": "fusionzoo.heads"}
BUILTIN = "built-in"


class RegistryError(ValueError):
    """A plugin name, spec string or hyperparameter is wrong; the message says what and how to fix it."""


@dataclass(frozen=True)
class PluginEntry:
    """One registered plugin: its public name, the class or builder, and where it came from."""

    kind: str
    name: str
    obj: Callable[..., nn.Module]
    source: str  # "built-in", a distribution name, or "local:<module or path>"

    @property
    def description(self) -> str:
        text = getattr(self.obj, "description", "") or (inspect.getdoc(self.obj) or "")
        return text.strip().splitlines()[0] if text.strip() else ""


_registry: dict[str, dict[str, PluginEntry]] = {kind: {} for kind in KINDS}
_lock = threading.RLock()
_state = {"builtins": False, "entry_points": False}
_current_source: list[str] = [BUILTIN]


# --------------------------------------------------------------------------------------------- register
def _register(kind: str, obj: Any = None, *, name: str | None = None) -> Any:
    def decorator(target: Any) -> Any:
        public = name or getattr(target, "__dict__", {}).get("name") or target.__name__
        _add(kind, public, target, _current_source[-1])
        return target

    if obj is None:
        return decorator
    if isinstance(obj, str):  # @register_fusion("name")
        name = obj
        return decorator
    return decorator(obj)


def _add(kind: str, public: str, target: Any, source: str) -> None:
    if not callable(target):
        raise RegistryError(
            f"{kind} '{public}' from {source}: expected a class or builder function, got {target!r}"
        )
    with _lock:
        existing = _registry[kind].get(public)
        if (
            existing is not None
            and existing.obj is not target
            and (existing.source == BUILTIN or source != BUILTIN)
        ):
            warnings.warn(
                f"fusionzoo: {kind} '{public}' from {source} ignored: the name is already registered "
                f"by {existing.source}",
                RuntimeWarning,
                stacklevel=3,
            )
            return
        _registry[kind][public] = PluginEntry(kind, public, target, source)


def register_fusion(obj: Any = None, *, name: str | None = None) -> Any:
    """Register a fusion class or builder. Use bare, or as ``@register_fusion("name")``.

    The public name is ``name``, else the class attribute ``name``, else ``__name__``.
    """
    return _register("fusion", obj, name=name)


def register_head(obj: Any = None, *, name: str | None = None) -> Any:
    """Register a head class or builder (same rules as :func:`register_fusion`)."""
    return _register("head", obj, name=name)


@contextlib.contextmanager
def _source(source: str) -> Iterator[None]:
    _current_source.append(source)
    try:
        yield
    finally:
        _current_source.pop()


# ----------------------------------------------------------------------------------------------- loading
def _ensure_loaded() -> None:
    with _lock:
        if not _state["builtins"]:
            _state["builtins"] = True
            importlib.import_module("fusionzoo.fusions")
            importlib.import_module("fusionzoo.heads")
        if not _state["entry_points"]:
            _state["entry_points"] = True
            for kind in KINDS:
                _load_entry_points(kind)


def _load_entry_points(kind: str) -> None:
    group = ENTRY_POINT_GROUPS[kind]
    seen: set[tuple[str, str]] = set()
    for ep in importlib.metadata.entry_points(group=group):
        dist = ep.dist.name if getattr(ep, "dist", None) is not None else "unknown distribution"
        if (ep.name, ep.value) in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add((ep.name, ep.value))
        try:
            with _source(dist):
                obj = ep.load()
        except Exception as exc:  # a broken plugin must not take the whole tool down
            warnings.warn(
                f"fusionzoo: {kind} plugin '{ep.name}' from distribution '{dist}' ({ep.value}) failed to "
                f"load and is skipped: {type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        if callable(obj) and not inspect.ismodule(obj):
            existing = _registry[kind].get(ep.name)
            if existing is None or existing.obj is not obj:
                _add(kind, ep.name, obj, dist)


def refresh_plugins() -> None:
    """Forget which entry points were loaded, so the next lookup reads them again."""
    with _lock:
        _state["entry_points"] = False
        for kind in KINDS:
            for public in [n for n, e in _registry[kind].items() if e.source != BUILTIN]:
                if not _registry[kind][public].source.startswith("local:"):
                    del _registry[kind][public]


def load_plugin(target: str) -> list[str]:
    """Import a local plugin, a module name (``pkg.module``) or a ``.py`` path; return names it added."""
    _ensure_loaded()
    before = {kind: set(_registry[kind]) for kind in KINDS}
    path = Path(target)
    if target.endswith(".py") or path.exists():
        if not path.is_file():
            raise RegistryError(
                f"plugin file '{target}' does not exist (expected a .py file or a module name)"
            )
        module_name = f"fusionzoo_local_plugin_{path.stem}_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise RegistryError(f"plugin file '{target}' cannot be imported as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        with _source(f"local:{path}"):
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                del sys.modules[module_name]
                raise RegistryError(
                    f"plugin file '{target}' failed to import: {type(exc).__name__}: {exc}"
                ) from exc
    else:
        with _source(f"local:{target}"):
            try:
                importlib.import_module(target)
            except ImportError as exc:
                raise RegistryError(
                    f"plugin module '{target}' cannot be imported ({exc}); pass an installed module name "
                    "such as 'mypkg.fusions' or a path to a .py file"
                ) from exc
    return sorted(f"{kind}:{n}" for kind in KINDS for n in set(_registry[kind]) - before[kind])


# ---------------------------------------------------------------------------------------------- look-up
def _names(kind: str) -> list[str]:
    _ensure_loaded()
    return sorted(_registry[kind])


def _list(
    kind: str, pattern: str | Iterable[str] = "*", exclude: str | Iterable[str] | None = None
) -> list[str]:
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    excludes = [] if exclude is None else [exclude] if isinstance(exclude, str) else list(exclude)
    names = [n for n in _names(kind) if any(fnmatch.fnmatchcase(n, p or "*") for p in patterns)]
    return [n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in excludes)]


def list_fusions(pattern: str | Iterable[str] = "*", exclude: str | Iterable[str] | None = None) -> list[str]:
    """Sorted names of registered fusions matching fnmatch ``pattern`` and none of ``exclude``."""
    return _list("fusion", pattern, exclude)


def list_heads(pattern: str | Iterable[str] = "*", exclude: str | Iterable[str] | None = None) -> list[str]:
    """Sorted names of registered heads matching fnmatch ``pattern`` and none of ``exclude``."""
    return _list("head", pattern, exclude)


def get_entry(kind: str, name: str) -> PluginEntry:
    """The registry entry for ``name``; an unknown name raises with close matches."""
    if kind not in KINDS:
        raise RegistryError(f"unknown plugin kind '{kind}'; expected one of {', '.join(KINDS)}")
    names = _names(kind)
    if name not in _registry[kind]:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise RegistryError(f"{kind} '{name}' is not registered{hint} Registered {kind}s: {', '.join(names)}")
    return _registry[kind][name]


def get_fusion_class(name: str) -> Callable[..., nn.Module]:
    """The class (or builder) registered as fusion ``name``."""
    return get_entry("fusion", name).obj


def get_head_class(name: str) -> Callable[..., nn.Module]:
    """The class (or builder) registered as head ``name``."""
    return get_entry("head", name).obj


# ------------------------------------------------------------------------------------------------ specs
def _parse_value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``"name:k=v,k2=v2"`` into ``("name", {"k": v, "k2": v2})`` with bool/int/float/str values."""
    if not isinstance(spec, str) or not spec.strip():
        raise RegistryError(f"empty plugin spec {spec!r}; expected 'name' or 'name:key=value,...'")
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if not name:
        raise RegistryError(f"plugin spec '{spec}' has no name before ':'")
    kwargs: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise RegistryError(f"plugin spec '{spec}': '{item}' is not of the form key=value")
        if key.strip() in kwargs:
            raise RegistryError(f"plugin spec '{spec}': '{key.strip()}' is given twice")
        kwargs[key.strip()] = _parse_value(value)
    return name, kwargs


def format_spec(name: str, kwargs: dict[str, Any] | None = None) -> str:
    """The canonical spec string (sorted keys, lower-case bools) for a name and hyperparameters."""
    if not kwargs:
        return name

    def fmt(v: Any) -> str:
        return str(v).lower() if isinstance(v, bool) or v is None else str(v)

    return name + ":" + ",".join(f"{k}={fmt(kwargs[k])}" for k in sorted(kwargs))


def hyperparameters(obj: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """Constructor hyperparameters of a plugin (everything but ``self``, ``dim``, ``num_classes``)."""
    target = obj.__init__ if inspect.isclass(obj) else obj
    params = inspect.signature(target).parameters
    out: dict[str, inspect.Parameter] = {}
    for pname, param in params.items():
        if pname in ("self", "dim", "num_classes"):
            continue
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            raise RegistryError(
                f"{getattr(obj, '__name__', obj)}: *args in a plugin constructor is not supported"
            )
        out[pname] = param
    return out


def _coerce(kind: str, name: str, key: str, value: Any, param: inspect.Parameter) -> Any:
    default = param.default
    if value is None or default is inspect.Parameter.empty or default is None:
        return value
    expected = type(default)
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is str:
        return str(value)
    raise RegistryError(
        f"{kind} '{name}': hyperparameter '{key}' expects {expected.__name__} (default {default!r}), got {value!r}"
    )


def _build(kind: str, spec: str, args: tuple[Any, ...], overrides: dict[str, Any]) -> nn.Module:
    name, kwargs = parse_spec(spec)
    entry = get_entry(kind, name)
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    params = hyperparameters(entry.obj)
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = {k: p for k, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
    for key in list(kwargs):
        if key not in named:
            if accepts_any:
                continue
            valid = ", ".join(sorted(named)) or "(none)"
            close = difflib.get_close_matches(key, list(named), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise RegistryError(f"{kind} '{name}' has no hyperparameter '{key}'{hint}; valid: {valid}")
        kwargs[key] = _coerce(kind, name, key, kwargs[key], named[key])
    try:
        module = entry.obj(*args, **kwargs)
    except RegistryError:
        raise
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{kind} '{spec}' could not be built: {exc}") from exc
    module.spec = format_spec(name, kwargs)  # type: ignore[attr-defined]
    module.registry_name = name  # type: ignore[attr-defined]
    return module


def create_fusion(name_or_spec: str, dim: int, **overrides: Any) -> nn.Module:
    """Build fusion ``name_or_spec`` (e.g. ``"fluid:gating=false"``) at width ``dim``.

    Overrides whose value is ``None`` are dropped so the plugin keeps its default.
    """
    return _build("fusion", name_or_spec, (dim,), overrides)


def create_head(name_or_spec: str, dim: int, num_classes: int, **overrides: Any) -> nn.Module:
    """Build head ``name_or_spec`` (e.g. ``"moe:experts=16,top_k=2"``) for ``num_classes`` classes."""
    return _build("head", name_or_spec, (dim, num_classes), overrides)
