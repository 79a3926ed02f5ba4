"""The evaluation-protocol interface: a seeded, deterministic perturbation at a level.

    @register_protocol
    class MissingImage(Protocol):
        name = "missing_image"
        stage = "test"                    # its primary stage; ``stages`` lists every stage it may run at
        level_option = "rates"            # the constructor option holding the level grid
        def __init__(self, *, rates=(0.0, 0.1, ..., 1.0), imputation="mask", seed=0): ...
        def levels(self) -> list[float]: ...
        def apply(self, batch, level, generator) -> dict: ...   # a perturbed copy of a batch dict

Rules every protocol keeps (``tests/test_protocols.py`` checks each built-in):

- **Level 0 is the clean input**, exactly: ``apply(batch, 0, g)`` returns the batch unchanged.
- **Deterministic given a seed**: all randomness comes from ``generator`` (a ``torch.Generator``). The
  evaluator seeds it from the protocol's canonical spec (which holds its ``seed`` option) once per level
  and walks the test split in a fixed batch order, so every fusion sees the same perturbed samples and a
  sample perturbed at level η is also perturbed at every level above η (nested curves).
- ``batch`` is the trainer's token batch (``image`` (B, Li, Ei), ``image_mask``, ``text`` (B, Lt, Et),
  ``text_mask``, ``label``, ``index``) — or, when ``needs_raw`` is True, a raw batch (``image``: a list
  of PIL images, ``text``: a list of strings) whose perturbation is then re-encoded into the feature
  cache (:mod:`fusionzoo.evaluation.raw`).
- ``target`` says what is perturbed: ``"tokens"``, ``"labels"`` (train-time label noise: applied once to
  the whole split's labels, so a flipped label stays flipped across epochs) or ``"raw"``.
- ``fit(data)`` (optional) reads statistics of the *training* split (mean token, feature std) before the
  protocol is applied; never statistics of the test split.

The canonical spec of a protocol (the ``protocol`` column of ``robustness.parquet``) is its name with
every hyperparameter except the level grid, defaults included: ``missing_image:imputation=mask,seed=0``.
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any, ClassVar, Literal

import torch

from fusionzoo.registry import REGISTRIES, RegistryError, format_spec

__all__ = [
    "DEFAULT_RATES",
    "Protocol",
    "check_rates",
    "generator_for",
    "register_protocol",
]

DEFAULT_RATES = tuple(round(0.1 * i, 1) for i in range(11))  # 0, 0.1, ..., 1.0 (MultiBench's grid)


def register_protocol(obj: Any = None, *, name: str | None = None) -> Any:
    """Register a protocol class (bare or ``@register_protocol("name")``)."""
    return REGISTRIES["protocol"].register(obj, name=name)


def check_rates(
    name: str, option: str, values: Any, low: float = 0.0, high: float = 1.0
) -> tuple[float, ...]:
    """The level grid as sorted unique floats in ``[low, high]``; anything else is a clear error."""
    items = values if isinstance(values, list | tuple) else [values]
    try:
        grid = sorted({float(v) for v in items})
    except (TypeError, ValueError):
        raise ValueError(f"protocol '{name}': {option} must be numbers, got {values!r}") from None
    if not grid:
        raise ValueError(f"protocol '{name}': {option} is empty")
    bad = [v for v in grid if not low <= v <= high]
    if bad:
        raise ValueError(f"protocol '{name}': {option} must lie in [{low:g}, {high:g}], got {bad}")
    return tuple(grid)


def generator_for(*parts: Any) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from a stable hash of ``parts`` (e.g. a canonical spec)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


class Protocol:
    """Base class of evaluation protocols (see the module docstring)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    stage: ClassVar[Literal["test", "train"]] = "test"
    stages: ClassVar[tuple[str, ...]] = ("test",)
    needs_raw: ClassVar[bool] = False
    target: ClassVar[Literal["tokens", "labels", "raw"]] = "tokens"
    raw_modalities: ClassVar[tuple[str, ...]] = ()  # what a raw protocol perturbs: "image" and/or "text"
    level_option: ClassVar[str] = "rates"
    level_bounds: ClassVar[tuple[float, float]] = (0.0, 1.0)
    test_config: ClassVar[dict[str, Any]] = {}

    def levels(self) -> list[float]:
        return [float(v) for v in getattr(self, self.level_option)]

    def test_levels(self) -> list[float]:
        """The levels a test-time evaluation runs: the grid with level 0 (the clean test set) added when
        it lacks it, since a robustness curve and its summaries are relative to the clean score."""
        return sorted({0.0, *self.levels()})

    def apply(
        self, batch: dict[str, Any], level: float, generator: torch.Generator
    ) -> dict[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError(f"{type(self).__name__} must implement apply()")

    def fit(self, data: Any) -> None:
        """Read statistics of the training split of ``data`` (a TrainingData); default: nothing."""

    # ------------------------------------------------------------------------------------ identity
    def options(self) -> dict[str, Any]:
        """Every constructor hyperparameter except the level grid (defaults included)."""
        params = inspect.signature(type(self).__init__).parameters
        out = {}
        for key in params:
            if key in ("self", self.level_option) or params[key].kind is inspect.Parameter.VAR_KEYWORD:
                continue
            value = getattr(self, key)
            out[key] = list(value) if isinstance(value, tuple) else value
        return out

    @property
    def canonical(self) -> str:
        """``name:opt=value,...`` without the level grid: what a robustness row was computed with."""
        return format_spec(self.registry_name or self.name, self.options())

    @property
    def registry_name(self) -> str:
        return self.__dict__.get("registry_name") or self.name

    @registry_name.setter
    def registry_name(self, value: str) -> None:
        self.__dict__["registry_name"] = value

    @property
    def label(self) -> str:
        """A short column-safe name for summaries (``missing_image``, ``image_corruption_motion_blur``)."""
        return self.registry_name

    def check_level(self, level: float) -> float:
        low, high = self.level_bounds
        level = float(level)
        if not low <= level <= high:
            raise RegistryError(
                f"protocol '{self.registry_name}': level {level:g} is outside [{low:g}, {high:g}]"
            )
        return level
