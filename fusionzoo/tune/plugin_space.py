"""How the tuner reads one fusion's or head's search space.

Declarative (the way to write a plugin): a classmethod ``search_space_distributions()`` returns
``{hyperparameter: optuna distribution}``; the keys are constructor hyperparameters::

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        return {"hidden_mult": CategoricalDistribution([1.0, 2.0]), "dropout": FloatDistribution(0.0, 0.5)}

Each entry is searched as the Optuna parameter ``<prefix><hyperparameter>``, where the prefix is the
class attribute ``search_space_prefix`` when set (``""`` for bare names) and ``"<registered name>_"``
otherwise (fluid's ``queries`` -> ``fluid_queries``). That name is the key of a ``[space]`` override.

Legacy: a plugin without a declaration whose ``search_space(trial)`` classmethod suggests values on an
Optuna trial and returns constructor kwargs still works. The tuner learns its space by running it once
on a recording stand-in trial (:class:`Recorder`, which answers each suggestion with the range's low
end or the first choice) and calls it at every trial through :class:`ComponentTrial`, which applies
renames, overrides and fixed values. It cannot see parameters that a legacy space suggests only on some
branches; a declaration has no such limit. Whichever of the two a class (or its nearest base) defines
last wins; ``fusionzoo.interface`` gives every plugin a ``search_space(trial)`` built from its
declaration, so callers of the legacy method keep working.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from fusionzoo import registry
from fusionzoo.tune.distributions import (
    SearchSpaceError,
    describe_distribution,
    representative,
    suggest_value,
)

__all__ = [
    "RULE_DICT",
    "RULE_KEYS",
    "RULE_VALUES",
    "ComponentTrial",
    "DeclaredParam",
    "PluginSpace",
    "Recorder",
    "call_legacy_space",
    "declaration_problems",
    "declared_distributions",
    "optuna_prefix",
    "raw_declaration",
    "read_plugin_space",
    "suggest_declared",
    "uses_legacy_space",
]


@dataclass(frozen=True)
class DeclaredParam:
    """One parameter a plugin declares: its Optuna name (before collision renames), the constructor
    hyperparameter it sets (``None`` for a legacy space, which maps names to kwargs itself)."""

    name: str
    hyperparameter: str | None
    distribution: BaseDistribution


@dataclass(frozen=True)
class PluginSpace:
    legacy: bool
    params: tuple[DeclaredParam, ...]


# ------------------------------------------------------------------------------------------ declarative
def _label(cls: Any) -> str:
    return getattr(cls, "__name__", repr(cls))


def uses_legacy_space(cls: Any) -> bool:
    """Whether ``cls`` defines its space by ``search_space(trial)`` rather than a declaration: the
    nearest class in its MRO that defines either decides."""
    for klass in getattr(cls, "__mro__", None) or (cls,):
        own = vars(klass)
        if "search_space_distributions" in own:
            return False
        if "search_space" in own:
            return True
    return False


RULE_DICT = "search space is a dict"
RULE_KEYS = "search space keys are constructor hyperparameters"
RULE_VALUES = "search space values are optuna distributions"


def raw_declaration(cls: Any) -> Any:
    """What ``cls`` declares, unchecked (a classmethod's result, or a plain dict class attribute)."""
    declared = getattr(cls, "search_space_distributions", None)
    if declared is None:
        return {}
    return declared() if callable(declared) else declared


def declaration_problems(cls: Any, declared: Any) -> list[tuple[str, str]]:
    """``(rule, detail)`` for every rule the declaration of ``cls`` breaks (empty: it is valid)."""
    if not isinstance(declared, Mapping):
        return [(RULE_DICT, f"expected a dict hyperparameter -> distribution, got {type(declared).__name__}")]
    valid = registry.hyperparameters(cls)
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in valid.values())
    problems = []
    for key, dist in declared.items():
        if not isinstance(key, str) or (key not in valid and not accepts_any):
            problems.append((RULE_KEYS, f"{key!r} is not one; valid: {', '.join(valid) or '(none)'}"))
        if not isinstance(dist, BaseDistribution):
            problems.append(
                (RULE_VALUES, f"{key!r} maps to {dist!r}, not a FloatDistribution, IntDistribution or "
                 "CategoricalDistribution")
            )  # fmt: skip
    return problems


def declared_distributions(cls: Any) -> dict[str, BaseDistribution]:
    """The checked declaration of ``cls`` (``{}`` when it declares nothing); a broken rule (a key that
    is not a constructor hyperparameter, a value that is not a distribution) is a SearchSpaceError."""
    declared = raw_declaration(cls)
    problems = declaration_problems(cls, declared)
    if problems:
        rule, detail = problems[0]
        raise SearchSpaceError(f"{_label(cls)}.search_space_distributions breaks '{rule}': {detail}")
    return dict(declared)


def optuna_prefix(cls: Any, name: str) -> str:
    """The prefix of the Optuna names of ``cls``'s declared parameters (registered as ``name``)."""
    prefix = getattr(cls, "search_space_prefix", None)
    return f"{name}_" if prefix is None else str(prefix)


def _registered_name(cls: Any) -> str:
    for kind in ("fusion", "head"):
        for name in registry.list_plugins(kind):
            if registry.get_entry(kind, name).obj is cls:
                return name
    return vars(cls).get("name") or _label(cls)  # the registry's own default name


def read_plugin_space(cls: Any, name: str) -> PluginSpace:
    """The parameters ``cls`` (registered as ``name``) declares, or records from a legacy space."""
    if uses_legacy_space(cls):
        recorder = Recorder()
        call_legacy_space(cls, recorder)
        params = tuple(DeclaredParam(n, None, d) for n, d in recorder.suggested.items())
        return PluginSpace(True, params)
    prefix = optuna_prefix(cls, name)
    declared = declared_distributions(cls)
    return PluginSpace(False, tuple(DeclaredParam(prefix + hp, hp, d) for hp, d in declared.items()))


def suggest_declared(cls: Any, trial: Any) -> dict[str, Any]:
    """The legacy ``search_space(trial)`` of a declarative plugin: suggest each declared parameter on
    ``trial`` under its Optuna name and return the constructor kwargs."""
    prefix = optuna_prefix(cls, _registered_name(cls))
    return {hp: suggest_value(trial, prefix + hp, d) for hp, d in declared_distributions(cls).items()}


# ----------------------------------------------------------------------------------------------- legacy
def call_legacy_space(cls: Any, trial: Any) -> dict[str, Any]:
    """Run a legacy ``search_space(trial)``; its result must be a dict of constructor kwargs."""
    space_fn = getattr(cls, "search_space", None)
    if space_fn is None:
        return {}
    result = space_fn(trial)
    if result is None:
        return {}
    if not isinstance(result, Mapping):
        raise SearchSpaceError(
            f"{_label(cls)}.search_space must return a dict of constructor kwargs, got {type(result).__name__}"
        )
    return dict(result)


class _SuggestAPI:
    """The ``suggest_*`` methods of ``optuna.Trial``, each turned into ``self.take(name, distribution)``."""

    def take(self, name: str, dist: BaseDistribution) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return self.take(name, FloatDistribution(low, high, step=step, log=log))

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return self.take(name, IntDistribution(low, high, step=step, log=log))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self.take(name, CategoricalDistribution(list(choices)))


class Recorder(_SuggestAPI):
    """A stand-in for ``optuna.Trial`` that records what a legacy ``search_space`` suggests."""

    def __init__(self) -> None:
        self.suggested: dict[str, BaseDistribution] = {}
        self.user_attrs: dict[str, Any] = {}
        self.number = 0
        self.params: dict[str, Any] = {}

    def take(self, name: str, dist: BaseDistribution) -> Any:
        if name in self.suggested and self.suggested[name] != dist:
            raise SearchSpaceError(
                f"parameter '{name}' is suggested twice with different distributions "
                f"({describe_distribution(self.suggested[name])} and {describe_distribution(dist)})"
            )
        self.suggested[name] = dist
        value = representative(dist)
        self.params[name] = value
        return value

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value

    def report(self, value: float, step: int) -> None:  # pragma: no cover - not used by spaces
        pass

    def should_prune(self) -> bool:  # pragma: no cover
        return False


class ComponentTrial(_SuggestAPI):
    """What a legacy ``search_space`` sees at each trial: renames colliding names, applies overrides
    and fixed values (``space`` is the merged :class:`~fusionzoo.tune.space.SearchSpace`)."""

    def __init__(self, trial: Any, space: Any, component: str, fixed: dict[str, Any]) -> None:
        self._trial = trial
        self._space = space
        self._component = component
        self._fixed = fixed

    def take(self, raw_name: str, declared: BaseDistribution) -> Any:
        name = self._space.optuna_name(self._component, raw_name)
        param = self._space.params.get(name)
        if param is not None and param.is_fixed:
            self._fixed[name] = param.fixed
            return param.fixed
        dist = param.distribution if param is not None and param.distribution is not None else declared
        return suggest_value(self._trial, name, dist)

    def __getattr__(self, item: str) -> Any:  # number, params, user attrs, report... pass through
        return getattr(self._trial, item)
