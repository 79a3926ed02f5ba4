"""What every contract checker shares: build the plugin under test, name it, give it a scratch folder."""

from __future__ import annotations

import contextlib
import inspect
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fusionzoo.testing.contracts import ContractError

__all__ = ["build_plugin", "plugin_name", "scratch_folder"]


def plugin_name(obj: Any) -> str:
    """The name a contract error shows: the spec it was built from, its registry name, or its class."""
    return (
        getattr(obj, "spec", None)
        or getattr(obj, "registry_name", None)
        or getattr(obj, "name", None)
        or type(obj).__name__
    )


def build_plugin(kind: str, target: Any, base: type, hp: dict[str, Any]) -> tuple[Any, str]:
    """An instance of ``target`` (a registered name/spec string, a class, or an instance) and its name.

    A constructor that fails is the rule ``constructor builds the plugin``; an object that is not a
    ``base`` instance is the rule ``subclasses <base>``.
    """
    from fusionzoo import registry

    label = target if isinstance(target, str) else getattr(target, "__name__", type(target).__name__)
    try:
        if isinstance(target, str):
            obj = registry.create(kind, target, **hp)
        elif inspect.isclass(target) or (callable(target) and not isinstance(target, base)):
            obj = target(**hp)
        else:
            obj = target
    except Exception as exc:
        raise ContractError(
            str(label), "constructor builds the plugin", f"{type(exc).__name__}: {exc}"
        ) from exc
    name = plugin_name(obj) if not inspect.isclass(target) else f"{target.__name__}"
    if not isinstance(obj, base):
        raise ContractError(
            name, f"subclasses {base.__module__}.{base.__name__}", f"got {type(obj).__name__}"
        )
    return obj, name


@contextlib.contextmanager
def scratch_folder(folder: str | Path | None) -> Iterator[Path]:
    """``folder`` (created) or a temporary folder removed afterwards."""
    if folder is not None:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="fusionzoo-contract-") as tmp:
        yield Path(tmp)
