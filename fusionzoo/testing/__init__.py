"""Test helpers shipped with fusionzoo: contract checkers and tiny fixtures.

    from fusionzoo.testing import check_fusion, check_head

Submodules (each imported on first use, so a fixture does not pull in torch): ``contracts``,
``glami_files`` (GLAMI-1M layout on disk), ``range_server`` (loopback HTTP with Range),
``tiny_splits`` (a tiny COLUMNS-format dataset), ``tiny_encoders`` (a tiny ViT and BERT in folders),
``token_features`` (synthetic token features).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ContractError", "check_fusion", "check_head", "validate_fusion_output", "validate_head_output"]

_EXPORTS = dict.fromkeys(__all__, "contracts")


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
