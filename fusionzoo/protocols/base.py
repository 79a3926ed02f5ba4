"""The evaluation-protocol interface: a seeded, deterministic perturbation at a level in [0, 1].

    @register_protocol
    class MissingImage(Protocol):
        name = "missing_image"
        stage = "test"                    # "test": applied to evaluation batches; "train": to training
        def __init__(self, *, rates=(0.0, 0.5, 1.0), imputation="mask"): ...
        def levels(self) -> list[float]: ...
        def apply(self, batch, level, generator) -> dict: ...   # a perturbed copy of a batch dict

Level 0 must leave the batch unchanged (the clean result, exactly). A protocol that needs the raw
inputs re-encoded declares ``needs_raw = True`` and perturbs rows instead of token batches.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from fusionzoo.registry import REGISTRIES

__all__ = ["Protocol", "register_protocol"]


def register_protocol(obj: Any = None, *, name: str | None = None) -> Any:
    """Register a protocol class (bare or ``@register_protocol("name")``)."""
    return REGISTRIES["protocol"].register(obj, name=name)


class Protocol:
    """Base class of evaluation protocols (see the module docstring)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    stage: ClassVar[Literal["test", "train"]] = "test"
    needs_raw: ClassVar[bool] = False

    def levels(self) -> list[float]:  # pragma: no cover - interface
        raise NotImplementedError(f"{type(self).__name__} must implement levels()")

    def apply(
        self, batch: dict[str, Any], level: float, generator: Any
    ) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} must implement apply()")
