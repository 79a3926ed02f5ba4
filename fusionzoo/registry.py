"""One plugin registry type for every axis (timm-style decorators, xarray-style entry points).

Kinds and where their plugins come from:

    kind       built-ins                entry-point group        constructor
    fusion     fusionzoo.fusions        fusionzoo.fusions        Fusion(dim, **hp)
    head       fusionzoo.heads          fusionzoo.heads          Head(dim, num_classes, **hp)
    dataset    fusionzoo.datasets       fusionzoo.datasets       DatasetBackend(**hp)
    metric     fusionzoo.metrics        fusionzoo.metrics        Metric(**hp)
    protocol   fusionzoo.protocols      fusionzoo.protocols      Protocol(**hp)
    reporter   fusionzoo.report         fusionzoo.reporters      Reporter(**hp)
    launcher   fusionzoo.launch         fusionzoo.launchers      Launcher(**hp)

Built-ins register with ``@register_fusion`` (``@register_head``, ``@REGISTRIES["metric"].register``...).
Third-party distributions declare an entry point in a kind's group; each registry loads its built-ins
and entry points lazily, once, on its first lookup (``refresh_plugins()`` clears that). A plugin that
fails to import is a ``RuntimeWarning`` naming its distribution, never a crash; a name a built-in
already has stays the built-in's, with a warning.

Spec strings name a plugin and its hyperparameters: ``fluid``, ``fluid:gating=false,queries=16``,
``missing_image:rates=0;0.5;1`` (a ``;``-separated value is a list).
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

from fusionzoo.errors import InputError

__all__ = [
    "KINDS",
    "REGISTRIES",
    "PluginEntry",
    "PluginFailure",
    "Registry",
    "RegistryError",
    "create",
    "create_fusion",
    "create_head",
    "did_you_mean",
    "format_spec",
    "get_entry",
    "get_fusion_class",
    "get_head_class",
    "hyperparameters",
    "list_fusions",
    "list_heads",
    "list_plugins",
    "load_plugin",
    "parse_spec",
    "refresh_plugins",
    "register_fusion",
    "register_head",
    "validate_spec",
]

BUILTIN = "built-in"


class RegistryError(InputError, ValueError):
    """A plugin name, spec string or hyperparameter is wrong; the message says what and how to fix it."""


def did_you_mean(word: str, candidates: Iterable[str], n: int = 1, cutoff: float = 0.6) -> str:
    """``" (did you mean 'a', 'b' or 'c'?)"`` for the close matches of ``word`` (difflib), else ``""``.

    A parenthetical placed before the sentence's own punctuation, so messages read
    ``fusion 'flim' is not registered (did you mean 'film'?). Registered fusions: ...``."""
    close = [repr(c) for c in difflib.get_close_matches(word, list(candidates), n=n, cutoff=cutoff)]
    if not close:
        return ""
    listed = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
    return f" (did you mean {listed}?)"


@dataclass(frozen=True)
class PluginEntry:
    """One registered plugin: its public name, the class or builder, and where it came from."""

    kind: str
    name: str
    obj: Callable[..., Any]
    source: str  # "built-in", a distribution name, or "local:<module or path>"

    @property
    def description(self) -> str:
        text = getattr(self.obj, "description", "") or (inspect.getdoc(self.obj) or "")
        return text.strip().splitlines()[0] if text.strip() else ""

    @property
    def test_config(self) -> dict[str, Any]:
        """Tiny hyperparameters for contract tests, declared by the plugin (as timm's default_cfgs)."""
        return dict(getattr(self.obj, "test_config", None) or {})


@dataclass(frozen=True)
class PluginFailure:
    """An entry point that failed to import: its name, distribution and the error (``fusionzoo list``
    shows it as a row)."""

    kind: str
    name: str
    source: str
    error: str


_lock = threading.RLock()
_current_source: list[str] = [BUILTIN]


@contextlib.contextmanager
def _source(source: str) -> Iterator[None]:
    _current_source.append(source)
    try:
        yield
    finally:
        _current_source.pop()


class Registry:
    """The plugins of one kind: register, list (fnmatch), look up (close matches), build from specs.

    ``positional`` names the constructor's leading positional arguments (``("dim",)`` for fusions);
    they are not hyperparameters and cannot be set in a spec.
    """

    def __init__(
        self, kind: str, builtins: str, group: str, positional: tuple[str, ...] = (), plural: str = ""
    ) -> None:
        self.kind = kind
        self.builtins = builtins
        self.group = group
        self.positional = positional
        self.plural = plural or f"{kind}s"
        self._entries: dict[str, PluginEntry] = {}
        self._failures: dict[str, PluginFailure] = {}
        self._builtins_loaded = False
        self._entry_points_loaded = False

    # ------------------------------------------------------------------------------------ register
    def register(self, obj: Any = None, *, name: str | None = None) -> Any:
        """Register a class or builder. Use bare, as ``@register("name")`` or ``@register(name=...)``.

        The public name is ``name``, else the class attribute ``name``, else ``__name__``.
        """

        def decorator(target: Any) -> Any:
            public = name or getattr(target, "__dict__", {}).get("name") or target.__name__
            self.add(public, target, _current_source[-1])
            return target

        if obj is None:
            return decorator
        if isinstance(obj, str):
            name = obj
            return decorator
        return decorator(obj)

    def add(self, public: str, target: Any, source: str) -> None:
        if not callable(target):
            raise RegistryError(
                f"{self.kind} '{public}' from {source}: expected a class or builder function, got {target!r}"
            )
        with _lock:
            existing = self._entries.get(public)
            if (
                existing is not None
                and existing.obj is not target
                and (existing.source == BUILTIN or source != BUILTIN)
            ):
                warnings.warn(
                    f"fusionzoo: {self.kind} '{public}' from {source} ignored: the name is already "
                    f"registered by {existing.source}",
                    RuntimeWarning,
                    stacklevel=4,
                )
                return
            self._entries[public] = PluginEntry(self.kind, public, target, source)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests and interactive sessions that register throw-away plugins)."""
        with _lock:
            self._entries.pop(name, None)

    # ------------------------------------------------------------------------------------- loading
    def ensure_loaded(self) -> None:
        with _lock:
            if not self._builtins_loaded:
                self._builtins_loaded = True
                importlib.import_module(self.builtins)
            if not self._entry_points_loaded:
                self._entry_points_loaded = True
                self._load_entry_points()

    def _load_entry_points(self) -> None:
        seen: set[tuple[str, str]] = set()
        for ep in importlib.metadata.entry_points(group=self.group):
            dist = ep.dist.name if getattr(ep, "dist", None) is not None else "unknown distribution"
            if (ep.name, ep.value) in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add((ep.name, ep.value))
            try:
                with _source(dist):
                    obj = ep.load()
            except Exception as exc:  # a broken plugin must not take the whole tool down
                error = f"{type(exc).__name__}: {exc}"
                self._failures[ep.name] = PluginFailure(self.kind, ep.name, dist, error)
                warnings.warn(
                    f"fusionzoo: {self.kind} plugin '{ep.name}' from distribution '{dist}' ({ep.value}) "
                    f"failed to load and is skipped: {type(exc).__name__}: {exc}",
                    RuntimeWarning,
                    stacklevel=2,
                )
                continue
            if callable(obj) and not inspect.ismodule(obj):
                existing = self._entries.get(ep.name)
                if existing is None or existing.obj is not obj:
                    self.add(ep.name, obj, dist)

    def refresh(self) -> None:
        """Forget the entry-point plugins, so the next lookup reads the entry points again."""
        with _lock:
            self._entry_points_loaded = False
            self._failures.clear()
            for public in [n for n, e in self._entries.items() if e.source != BUILTIN]:
                if not self._entries[public].source.startswith("local:"):
                    del self._entries[public]

    # -------------------------------------------------------------------------------------- lookup
    def names(self) -> list[str]:
        self.ensure_loaded()
        return sorted(self._entries)

    def list(
        self, pattern: str | Iterable[str] = "*", exclude: str | Iterable[str] | None = None
    ) -> list[str]:
        """Sorted names matching any fnmatch ``pattern`` and none of ``exclude``."""
        patterns = [pattern] if isinstance(pattern, str) else list(pattern)
        excludes = [] if exclude is None else [exclude] if isinstance(exclude, str) else list(exclude)
        names = [n for n in self.names() if any(fnmatch.fnmatchcase(n, p or "*") for p in patterns)]
        return [n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in excludes)]

    def failures(self, pattern: str = "*") -> dict[str, PluginFailure]:
        """Entry points of this kind that failed to import (name matching ``pattern``), by name."""
        self.ensure_loaded()
        return {n: f for n, f in sorted(self._failures.items()) if fnmatch.fnmatchcase(n, pattern or "*")}

    def get(self, name: str) -> PluginEntry:
        """The entry for ``name``; an unknown name raises with close matches and the registered names."""
        names = self.names()
        if name not in self._entries:
            raise RegistryError(
                f"{self.kind} '{name}' is not registered{did_you_mean(name, names, n=3, cutoff=0.5)}. "
                f"Registered {self.plural}: {', '.join(names) or '(none)'}"
            )
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def hyperparameters(self, obj: Callable[..., Any]) -> dict[str, inspect.Parameter]:
        """Constructor hyperparameters of a plugin (everything but ``self`` and the positional ones)."""
        target = obj.__init__ if inspect.isclass(obj) else obj
        if target is object.__init__:  # a class without its own constructor has no hyperparameters
            return {}
        params = inspect.signature(target).parameters
        out: dict[str, inspect.Parameter] = {}
        for pname, param in params.items():
            if pname == "self" or pname in self.positional:
                continue
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                raise RegistryError(
                    f"{getattr(obj, '__name__', obj)}: *args in a plugin constructor is not supported"
                )
            out[pname] = param
        return out

    # ----------------------------------------------------------------------------------------- build
    def resolve(
        self, spec: str, overrides: dict[str, Any] | None = None
    ) -> tuple[PluginEntry, dict[str, Any]]:
        """The entry and the checked, type-coerced hyperparameters of ``spec`` (nothing is built)."""
        name, kwargs = parse_spec(spec)
        entry = self.get(name)
        kwargs.update({k: v for k, v in (overrides or {}).items() if v is not None})
        params = self.hyperparameters(entry.obj)
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        named = {k: p for k, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
        for key in list(kwargs):
            if key not in named:
                if accepts_any:
                    continue
                valid = ", ".join(sorted(named)) or "(none)"
                raise RegistryError(
                    f"{self.kind} '{name}' has no hyperparameter '{key}'{did_you_mean(key, named)}; valid: {valid}"
                )
            kwargs[key] = _coerce(self.kind, name, key, kwargs[key], named[key])
        return entry, kwargs

    def create(self, spec: str, *args: Any, **overrides: Any) -> Any:
        """Build ``spec`` with the positional ``args``; overrides whose value is ``None`` are dropped."""
        entry, kwargs = self.resolve(spec, overrides)
        try:
            obj = entry.obj(*args, **kwargs)
        except RegistryError:
            raise
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"{self.kind} '{spec}' could not be built: {exc}") from exc
        with contextlib.suppress(AttributeError, TypeError):  # e.g. objects with __slots__
            obj.spec = format_spec(entry.name, kwargs)
            obj.registry_name = entry.name
        return obj


REGISTRIES: dict[str, Registry] = {
    "fusion": Registry("fusion", "fusionzoo.fusions", "fusionzoo.fusions", ("dim",)),
    "head": Registry("head", "fusionzoo.heads", "fusionzoo.heads", ("dim", "num_classes")),
    "dataset": Registry("dataset", "fusionzoo.datasets", "fusionzoo.datasets"),
    "metric": Registry("metric", "fusionzoo.metrics", "fusionzoo.metrics"),
    "protocol": Registry("protocol", "fusionzoo.protocols", "fusionzoo.protocols"),
    "reporter": Registry("reporter", "fusionzoo.report", "fusionzoo.reporters"),
    "launcher": Registry("launcher", "fusionzoo.launch", "fusionzoo.launchers"),
}
KINDS = tuple(REGISTRIES)
ENTRY_POINT_GROUPS = {kind: reg.group for kind, reg in REGISTRIES.items()}


def registry_of(kind: str) -> Registry:
    """The registry of ``kind`` (singular, e.g. ``"metric"``; plural names are accepted too)."""
    for reg in REGISTRIES.values():
        if kind in (reg.kind, reg.plural):
            return reg
    raise RegistryError(f"unknown plugin kind '{kind}'; expected one of {', '.join(KINDS)}")


# ------------------------------------------------------------------------------- module-level helpers
def register_fusion(obj: Any = None, *, name: str | None = None) -> Any:
    """Register a fusion class or builder. Use bare, or as ``@register_fusion("name")``."""
    return REGISTRIES["fusion"].register(obj, name=name)


def register_head(obj: Any = None, *, name: str | None = None) -> Any:
    """Register a head class or builder (same rules as :func:`register_fusion`)."""
    return REGISTRIES["head"].register(obj, name=name)


def list_plugins(
    kind: str, pattern: str | Iterable[str] = "*", exclude: str | Iterable[str] | None = None
) -> list[str]:
    """Sorted names of registered plugins of ``kind`` matching ``pattern`` and none of ``exclude``."""
    return registry_of(kind).list(pattern, exclude)


def list_fusions(pattern: str | Iterable[str] = "*", exclude: str | Iterable[str] | None = None) -> list[str]:
    """Sorted names of registered fusions matching fnmatch ``pattern`` and none of ``exclude``."""
    return REGISTRIES["fusion"].list(pattern, exclude)


def list_heads(pattern: str | Iterable[str] = "*", exclude: str | Iterable[str] | None = None) -> list[str]:
    """Sorted names of registered heads matching fnmatch ``pattern`` and none of ``exclude``."""
    return REGISTRIES["head"].list(pattern, exclude)


def get_entry(kind: str, name: str) -> PluginEntry:
    """The registry entry for ``name``; an unknown name raises with close matches."""
    return registry_of(kind).get(name)


def get_fusion_class(name: str) -> Callable[..., Any]:
    """The class (or builder) registered as fusion ``name``."""
    return REGISTRIES["fusion"].get(name).obj


def get_head_class(name: str) -> Callable[..., Any]:
    """The class (or builder) registered as head ``name``."""
    return REGISTRIES["head"].get(name).obj


def hyperparameters(obj: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """Constructor hyperparameters of a plugin (everything but ``self``, ``dim``, ``num_classes``)."""
    return REGISTRIES["head"].hyperparameters(obj)


def create(kind: str, spec: str, *args: Any, **overrides: Any) -> Any:
    """Build plugin ``spec`` of ``kind`` (e.g. ``create("metric", "accuracy")``)."""
    return registry_of(kind).create(spec, *args, **overrides)


def create_fusion(name_or_spec: str, dim: int, **overrides: Any) -> Any:
    """Build fusion ``name_or_spec`` (e.g. ``"fluid:gating=false"``) at width ``dim``."""
    return REGISTRIES["fusion"].create(name_or_spec, dim, **overrides)


def create_head(name_or_spec: str, dim: int, num_classes: int, **overrides: Any) -> Any:
    """Build head ``name_or_spec`` (e.g. ``"moe:experts=16,top_k=2"``) for ``num_classes`` classes."""
    return REGISTRIES["head"].create(name_or_spec, dim, num_classes, **overrides)


def validate_spec(kind: str, spec: str) -> str:
    """Check name and hyperparameters of ``spec`` without building it; return the canonical spec."""
    entry, kwargs = registry_of(kind).resolve(spec)
    return format_spec(entry.name, kwargs)


def refresh_plugins() -> None:
    """Forget which entry points were loaded (every kind), so the next lookup reads them again."""
    for reg in REGISTRIES.values():
        reg.refresh()


def load_plugin(target: str) -> list[str]:
    """Import a local plugin, a module name (``pkg.module``) or a ``.py`` path; return what it added
    as ``kind:name`` strings. A local plugin may register plugins of any kind. A file already loaded in
    this process is not executed again (as ``import``), so naming it twice adds nothing."""
    for reg in REGISTRIES.values():
        reg.ensure_loaded()
    before = {kind: set(reg.names()) for kind, reg in REGISTRIES.items()}
    path = Path(target)
    if target.endswith(".py") or path.exists():
        if not path.is_file():
            raise RegistryError(
                f"plugin file '{target}' does not exist (expected a .py file or a module name)"
            )
        module_name = f"fusionzoo_local_plugin_{path.stem}_{abs(hash(str(path.resolve())))}"
        if module_name in sys.modules:  # already loaded in this process: like import, not run twice
            return []
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
    return sorted(f"{kind}:{n}" for kind, reg in REGISTRIES.items() for n in set(reg.names()) - before[kind])


# ------------------------------------------------------------------------------------------------ specs
def _parse_scalar(text: str) -> Any:
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


def _parse_value(text: str) -> Any:
    """A scalar (bool/int/float/None/str), or a list when the text holds ``;`` (``0;0.5;1``)."""
    if ";" in text:
        return [_parse_scalar(part) for part in text.split(";") if part.strip()]
    return _parse_scalar(text)


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
    """The canonical spec string (sorted keys, lower-case bools, lists joined by ``;``)."""
    if not kwargs:
        return name

    def scalar(v: Any) -> str:
        return str(v).lower() if isinstance(v, bool) or v is None else str(v)

    def fmt(v: Any) -> str:
        return ";".join(scalar(x) for x in v) if isinstance(v, list | tuple) else scalar(v)

    return name + ":" + ",".join(f"{k}={fmt(kwargs[k])}" for k in sorted(kwargs))


def _coerce(kind: str, name: str, key: str, value: Any, param: inspect.Parameter) -> Any:
    default = param.default
    if value is None or default is inspect.Parameter.empty or default is None:
        return value
    expected = type(default)
    if isinstance(default, tuple | list):
        items = value if isinstance(value, list | tuple) else [value]
        return expected(items)
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is str:
        return str(value)
    raise RegistryError(
        f"{kind} '{name}': hyperparameter '{key}' expects {expected.__name__} (default {default!r}), got {value!r}"
    )
