"""fusionzoo: benchmark interchangeable multimodal (image + text) fusion modules and heads.

The names below are imported on first use (PEP 562), so ``import fusionzoo.<module>`` loads only what
that module needs (e.g. the feature-cache format without torch). The Python API (docs/python-api.md):

    import fusionzoo as fz
    print(fz.bench(fusions=["film"], seeds=[0], epochs=1).leaderboard)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Results": "fusionzoo.api",
    "evaluate": "fusionzoo.api",
    "load_results": "fusionzoo.api",
    "Fusion": "fusionzoo.interface",
    "FusionOutput": "fusionzoo.interface",
    "Head": "fusionzoo.interface",
    "HeadOutput": "fusionzoo.interface",
    "create_fusion": "fusionzoo.registry",
    "create_head": "fusionzoo.registry",
    "get_fusion_class": "fusionzoo.registry",
    "get_head_class": "fusionzoo.registry",
    "list_fusions": "fusionzoo.registry",
    "list_heads": "fusionzoo.registry",
    "load_plugin": "fusionzoo.registry",
    "parse_spec": "fusionzoo.registry",
    "register_fusion": "fusionzoo.registry",
    "register_head": "fusionzoo.registry",
}

# packages that are also the API function of their name (fusionzoo.callable_package)
_CALLABLE_PACKAGES = ("bench", "tune")

__all__ = ["__version__", *sorted([*_EXPORTS, *_CALLABLE_PACKAGES])]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _CALLABLE_PACKAGES:
        return importlib.import_module(f"fusionzoo.{name}")  # the import sets the attribute
    raise AttributeError(f"module 'fusionzoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_CALLABLE_PACKAGES))
