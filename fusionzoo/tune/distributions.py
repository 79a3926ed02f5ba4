"""Optuna distributions as the tuner uses them: describe one, suggest it on a trial, parse a ``[space]``
value into one. Nothing here knows about plugins or the merged space."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from fusionzoo.errors import InputError

__all__ = [
    "UNSET",
    "SearchSpaceError",
    "describe_distribution",
    "parse_override",
    "representative",
    "suggest_value",
]

UNSET: Any = object()  # "not fixed": the parameter is searched


class SearchSpaceError(InputError, ValueError):
    """A search-space definition or override is wrong; the message names it and the valid choices."""


def describe_distribution(dist: BaseDistribution | None) -> str:
    """Human-readable form: ``float [0.0001, 0.01] log``, ``int [1, 8] step 2``, ``{1.0, 2.0}``."""
    if dist is None:
        return "-"
    if isinstance(dist, FloatDistribution):
        text = f"float [{dist.low:g}, {dist.high:g}]"
        if dist.log:
            text += " log"
        if dist.step is not None:
            text += f" step {dist.step:g}"
        return text
    if isinstance(dist, IntDistribution):
        text = f"int [{dist.low}, {dist.high}]"
        if dist.log:
            text += " log"
        if dist.step != 1:
            text += f" step {dist.step}"
        return text
    if isinstance(dist, CategoricalDistribution):
        return "{" + ", ".join(repr(c) if isinstance(c, str) else str(c) for c in dist.choices) + "}"
    return repr(dist)


def suggest_value(trial: Any, name: str, dist: BaseDistribution) -> Any:
    """Ask ``trial`` for ``name`` under ``dist`` through the public ``suggest_*`` API."""
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, list(dist.choices))
    raise SearchSpaceError(f"unsupported distribution {dist!r} for parameter '{name}'")


def representative(dist: BaseDistribution, last: bool = False) -> Any:
    """The low end (or, with ``last``, the high end) of a range; the first (last) choice."""
    if isinstance(dist, FloatDistribution | IntDistribution):
        return dist.high if last else dist.low
    return dist.choices[-1 if last else 0]


def parse_override(spec: Any) -> tuple[BaseDistribution | None, Any]:
    """A ``[space]`` value -> ``(distribution, UNSET)`` or ``(None, fixed value)``.

    Scalars fix; ``{value = x}`` fixes; ``{choices = [...]}`` is categorical; ``{low, high[, log,
    step]}`` is an int range when low, high (and step) are all integers, else a float range.
    """
    if isinstance(spec, bool | int | float | str):
        return None, spec
    if not isinstance(spec, Mapping):
        raise SearchSpaceError(
            f"expected a value (fixes it), {{choices = [...]}} or {{low = .., high = .., log = .., step = ..}}, "
            f"got {spec!r}"
        )
    keys = set(spec)
    if keys == {"value"}:
        return None, spec["value"]
    if "choices" in keys:
        if keys - {"choices"}:
            raise SearchSpaceError(
                f"'choices' cannot be combined with {', '.join(sorted(keys - {'choices'}))}"
            )
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise SearchSpaceError(f"choices must be a non-empty list, got {choices!r}")
        for choice in choices:
            if not (choice is None or isinstance(choice, bool | int | float | str)):
                raise SearchSpaceError(f"choice {choice!r} must be a bool, int, float or string")
        return CategoricalDistribution(choices), UNSET
    allowed = {"low", "high", "log", "step"}
    if not {"low", "high"} <= keys or keys - allowed:
        extra = sorted(keys - allowed)
        raise SearchSpaceError(
            "a range needs 'low' and 'high' (optional 'log', 'step')"
            + (f"; unknown key(s): {', '.join(extra)}" if extra else "")
            + "; or use 'choices' or 'value'"
        )
    low, high, log, step = spec["low"], spec["high"], bool(spec.get("log", False)), spec.get("step")
    for key, value in (("low", low), ("high", high), ("step", step)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise SearchSpaceError(f"{key} must be a number, got {value!r}")
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise SearchSpaceError(f"need finite low <= high, got low={low!r}, high={high!r}")
    if log and low <= 0:
        raise SearchSpaceError(f"a log range needs low > 0, got {low!r}")
    if log and step is not None:
        raise SearchSpaceError("'log' and 'step' cannot be combined")
    try:
        if isinstance(low, int) and isinstance(high, int) and (step is None or isinstance(step, int)):
            return IntDistribution(low, high, log=log, step=step or 1), UNSET
        return FloatDistribution(float(low), float(high), log=log, step=step), UNSET
    except ValueError as exc:
        raise SearchSpaceError(str(exc)) from None
