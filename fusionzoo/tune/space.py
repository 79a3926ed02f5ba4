"""The merged Optuna search space of one tuning study: fusion + head + training.

Each fusion and head declares its own space, ``{hyperparameter: optuna distribution}``, in a
``search_space_distributions()`` classmethod (read by :mod:`fusionzoo.tune.plugin_space`, which also
runs legacy ``search_space(trial)`` plugins). The tuner merges them with a shared training space:

    lr               log-uniform (frozen: 1e-4..1e-2, finetune: 1e-6..1e-4)   -> RunConfig.lr
    weight_decay     log-uniform 1e-4..0.1                                    -> RunConfig.weight_decay
    label_smoothing  uniform 0..0.2                                           -> RunConfig.label_smoothing
    proj_dropout     uniform 0..0.3 (dropout after the modality projections)   -> RunConfig.dropout
    aux_<name>       log-uniform 0.05..1, one per aux loss the model returns  -> RunConfig.loss_weights[name]

A declared hyperparameter is the Optuna parameter ``<plugin name>_<hyperparameter>`` (``fluid_queries``;
a plugin may set ``search_space_prefix``, e.g. ``""`` for bare names). Parameter names are unique within
a study. The training space claims its names first; a fusion or head parameter whose name is already
taken by another component is renamed ``<component>_<name>``.

A TOML file overrides or fixes any parameter in its ``[space]`` table::

    [space]
    lr = { low = 1e-4, high = 3e-3, log = true }   # new range
    hidden_mult = { choices = [1.0, 2.0] }         # new choices
    head_dropout = 0.1                             # fixed: not searched
    batch_size = { choices = [64, 128] }           # a RunConfig field added to the space

Hyperparameters given in the spec strings (``--fusion concat_mlp:dropout=0.2``) are fixed as well.
"""

from __future__ import annotations

import dataclasses
import difflib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from optuna.distributions import BaseDistribution, FloatDistribution

from fusionzoo import registry
from fusionzoo.tune.distributions import (
    UNSET,
    SearchSpaceError,
    describe_distribution,
    parse_override,
    suggest_value,
)
from fusionzoo.tune.plugin_space import ComponentTrial, call_legacy_space, read_plugin_space

__all__ = [
    "ADDABLE_TRAIN_FIELDS",
    "Param",
    "SearchSpace",
    "SearchSpaceError",
    "Suggestion",
    "build_space",
    "describe_distribution",
    "discover_aux_losses",
    "parse_override",
]

TRAIN = "train"
FUSION = "fusion"
HEAD = "head"
COMPONENT_ORDER = (TRAIN, FUSION, HEAD)

# RunConfig fields a TOML [space] may add to the search (or fix) beyond the default training space.
ADDABLE_TRAIN_FIELDS: dict[str, type] = {
    "batch_size": int,
    "warmup": float,
    "grad_clip": float,
    "dim": int,
    "class_weighted": bool,
    "modality_embeddings": bool,
    "position_embeddings": bool,
    "patience": int,
}
# training parameter name -> RunConfig field
TRAIN_FIELD_OF = {"lr": "lr", "weight_decay": "weight_decay", "label_smoothing": "label_smoothing"}
TRAIN_FIELD_OF["proj_dropout"] = "dropout"
AUX_PREFIX = "aux_"


@dataclass
class Param:
    """One parameter of the merged space.

    name: the Optuna parameter name (unique in the study).
    component: ``"train"``, ``"fusion"`` or ``"head"``.
    raw_name: the name the component declared (differs from ``name`` after a collision rename).
    distribution: what is searched; ``None`` when the parameter is fixed.
    fixed: the fixed value (``UNSET`` when searched).
    source: where the definition comes from (``"fusion concat_mlp"``, ``"training"``, ``"tune.toml"``...).
    hyperparameter: the constructor kwarg a declared plugin parameter sets (``None``: training, legacy).
    """

    name: str
    component: str
    raw_name: str
    distribution: BaseDistribution | None
    fixed: Any = UNSET
    source: str = ""
    hyperparameter: str | None = None

    @property
    def is_fixed(self) -> bool:
        return self.fixed is not UNSET


@dataclass
class Suggestion:
    """What one trial gets: the plugins' kwargs and the RunConfig fields."""

    fusion_kwargs: dict[str, Any] = field(default_factory=dict)
    head_kwargs: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    loss_weights: dict[str, float] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- the space
@dataclass
class SearchSpace:
    """The merged space. ``params`` is ordered: training, fusion, head."""

    fusion: str
    head: str
    mode: str = "frozen"
    aux_losses: tuple[str, ...] = ()
    params: dict[str, Param] = field(default_factory=dict)
    # (component, raw name) -> Optuna name, for every declared or recorded plugin parameter
    names: dict[tuple[str, str], str] = field(default_factory=dict)
    legacy: tuple[str, ...] = ()  # components whose plugin has a legacy search_space(trial)

    @property
    def fusion_name(self) -> str:
        return registry.parse_spec(self.fusion)[0]

    @property
    def head_name(self) -> str:
        return registry.parse_spec(self.head)[0]

    def optuna_name(self, component: str, raw_name: str) -> str:
        """The study-wide name of a component's parameter (``head_dropout`` after a collision)."""
        if (component, raw_name) in self.names:
            return self.names[(component, raw_name)]
        taken = {n for (c, _), n in self.names.items() if c != component}
        return raw_name if raw_name not in taken else f"{component}_{raw_name}"

    def searched(self) -> list[Param]:
        return [p for p in self.params.values() if not p.is_fixed]

    def valid_names(self) -> list[str]:
        return list(self.params)

    # ----------------------------------------------------------------------------------------- sampling
    def suggest(self, trial: Any) -> Suggestion:
        """Suggest every parameter on ``trial`` (an ``optuna.Trial`` or ``FixedTrial``)."""
        out = Suggestion()
        fusion_name, fusion_spec_kwargs = registry.parse_spec(self.fusion)
        head_name, head_spec_kwargs = registry.parse_spec(self.head)
        for param in self.params.values():
            if param.component != TRAIN:
                continue
            value = self._draw(trial, param, out)
            if param.name.startswith(AUX_PREFIX) and param.name not in ADDABLE_TRAIN_FIELDS:
                out.loss_weights[param.name[len(AUX_PREFIX) :]] = float(value)
            else:
                out.train[TRAIN_FIELD_OF.get(param.name, param.name)] = value
        out.fusion_kwargs = self._plugin_kwargs(trial, FUSION, registry.get_fusion_class(fusion_name), out)
        out.head_kwargs = self._plugin_kwargs(trial, HEAD, registry.get_head_class(head_name), out)
        out.fusion_kwargs.update(fusion_spec_kwargs)  # spec hyperparameters always win
        out.head_kwargs.update(head_spec_kwargs)
        return out

    def _draw(self, trial: Any, param: Param, out: Suggestion) -> Any:
        if param.is_fixed:
            out.fixed[param.name] = param.fixed
            return param.fixed
        return suggest_value(trial, param.name, param.distribution)

    def _plugin_kwargs(self, trial: Any, component: str, cls: Any, out: Suggestion) -> dict[str, Any]:
        """The constructor kwargs of one plugin: its declared parameters, in declaration order, or
        what its legacy ``search_space`` returns through the renaming/overriding proxy."""
        if component in self.legacy:
            return call_legacy_space(cls, ComponentTrial(trial, self, component, out.fixed))
        return {
            p.hyperparameter: self._draw(trial, p, out)
            for p in self.params.values()
            if p.component == component and p.hyperparameter is not None
        }

    def run_config(self, base: Any, suggestion: Suggestion) -> Any:
        """``base`` (a ``RunConfig``) with the suggestion applied: specs, training fields, loss weights."""
        changes: dict[str, Any] = dict(suggestion.train)
        changes["fusion"] = registry.format_spec(self.fusion_name, suggestion.fusion_kwargs)
        changes["head"] = registry.format_spec(self.head_name, suggestion.head_kwargs)
        if suggestion.loss_weights:
            changes["loss_weights"] = {**dict(base.loss_weights), **suggestion.loss_weights}
        return dataclasses.replace(base, **changes)

    # ---------------------------------------------------------------------------------------- overrides
    def apply_overrides(self, overrides: Mapping[str, Any], source: str = "config") -> None:
        """Apply ``[space]`` entries: a scalar fixes, a table sets a new range or choices."""
        unknown = [k for k in overrides if k not in self.params and k not in ADDABLE_TRAIN_FIELDS]
        if unknown:
            raise SearchSpaceError(self._unknown_message(unknown, source))
        for name, spec in overrides.items():
            if name in self.params:
                param = self.params[name]
            else:
                param = Param(name, TRAIN, name, None, source=source)
                self.params[name] = param
            try:
                dist, fixed = parse_override(spec)
            except SearchSpaceError as exc:
                raise SearchSpaceError(f"{source}: [space] {name}: {exc}") from None
            if name in ADDABLE_TRAIN_FIELDS and param.component == TRAIN:
                _check_field_type(name, dist, fixed, source)
            param.distribution, param.fixed, param.source = dist, fixed, source

    def _unknown_message(self, unknown: list[str], source: str) -> str:
        valid = self.valid_names()
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, valid + list(ADDABLE_TRAIN_FIELDS), n=1)
            hints.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        addable = [n for n in ADDABLE_TRAIN_FIELDS if n not in self.params]
        return (
            f"{source}: unknown parameter {', '.join(hints)} in [space] for fusion '{self.fusion}' and "
            f"head '{self.head}'. Valid parameters: {', '.join(valid)}. "
            f"RunConfig fields that can be added: {', '.join(addable)}"
        )

    # ----------------------------------------------------------------------------------------- display
    def rows(self) -> list[dict[str, str]]:
        rows = []
        for p in self.params.values():
            rows.append(
                {
                    "parameter": p.name,
                    "component": p.component,
                    "target": _target(p),
                    "distribution": describe_distribution(p.distribution) if not p.is_fixed else "-",
                    "status": f"fixed = {p.fixed!r}" if p.is_fixed else "searched",
                    "source": p.source,
                }
            )
        return rows

    def table(self, title: str | None = None) -> Any:
        """A ``rich.table.Table`` of the merged space."""
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=title or f"search space: fusion {self.fusion}, head {self.head}")
        for column in ("parameter", "component", "target", "distribution", "status", "source"):
            table.add_column(column, no_wrap=column in ("parameter", "distribution"))
        for row in self.rows():
            style = "dim" if row["status"] != "searched" else None
            table.add_row(*(escape(v) for v in row.values()), style=style)
        return table


def _target(p: Param) -> str:
    if p.component == TRAIN:
        if p.name.startswith(AUX_PREFIX) and p.name not in ADDABLE_TRAIN_FIELDS:
            return f"loss_weights[{p.name[len(AUX_PREFIX) :]}]"
        return f"RunConfig.{TRAIN_FIELD_OF.get(p.name, p.name)}"
    if p.hyperparameter is not None:
        return f"{p.component}.{p.hyperparameter}"
    renamed = f" (declared '{p.raw_name}')" if p.raw_name != p.name else ""
    return f"{p.component}.search_space{renamed}"


def _check_field_type(name: str, dist: BaseDistribution | None, fixed: Any, source: str) -> None:
    expected = ADDABLE_TRAIN_FIELDS[name]
    values = [fixed] if dist is None else list(getattr(dist, "choices", [])) or [dist.low, dist.high]
    for value in values:
        ok = isinstance(value, bool) if expected is bool else isinstance(value, int | float)
        if expected is int and (isinstance(value, bool) or not float(value).is_integer()):
            ok = False
        if not ok:
            raise SearchSpaceError(
                f"{source}: [space] {name} is RunConfig.{name} ({expected.__name__}); got {value!r}"
            )


# ------------------------------------------------------------------------------------------ construction
def training_space(mode: str = "frozen", aux_losses: Sequence[str] = ()) -> list[Param]:
    """The shared training space (see the module docstring)."""
    lr = (
        FloatDistribution(1e-6, 1e-4, log=True)
        if mode == "finetune"
        else FloatDistribution(1e-4, 1e-2, log=True)
    )
    params = [
        Param("lr", TRAIN, "lr", lr, source="training"),
        Param(
            "weight_decay", TRAIN, "weight_decay", FloatDistribution(1e-4, 0.1, log=True), source="training"
        ),
        Param("label_smoothing", TRAIN, "label_smoothing", FloatDistribution(0.0, 0.2), source="training"),
        Param("proj_dropout", TRAIN, "proj_dropout", FloatDistribution(0.0, 0.3), source="training"),
    ]
    for aux in aux_losses:
        name = AUX_PREFIX + aux
        params.append(Param(name, TRAIN, name, FloatDistribution(0.05, 1.0, log=True), source="aux loss"))
    return params


def discover_aux_losses(fusion: str, head: str, dim: int = 64, num_classes: int = 3) -> tuple[str, ...]:
    """Names of the aux losses the fusion and head return, found with one tiny forward pass."""
    from fusionzoo.train.losses import aux_loss_names  # torch: only when a space is built

    try:
        fusion_module = registry.create_fusion(fusion, dim)
        head_module = registry.create_head(head, dim, num_classes)
        names = aux_loss_names(fusion_module, head_module, dim)
    except registry.RegistryError:
        raise
    except Exception as exc:  # a plugin that cannot run on random input: no aux weights to tune
        warnings.warn(
            f"fusionzoo tune: could not probe the aux losses of fusion '{fusion}' + head '{head}' "
            f"({type(exc).__name__}: {exc}); their loss weights are not tuned",
            RuntimeWarning,
            stacklevel=2,
        )
        return ()
    return tuple(names)


def build_space(
    fusion: str,
    head: str | None = None,
    *,
    mode: str = "frozen",
    aux_losses: Sequence[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    overrides_source: str = "config",
) -> SearchSpace:
    """The merged space of ``fusion`` + ``head`` (default: the fusion's natural head) + training.

    ``aux_losses=None`` probes the model for its aux loss names. ``overrides`` is a ``[space]`` table.
    """
    fusion_name, fusion_kwargs = registry.parse_spec(fusion)
    fusion_cls = registry.get_fusion_class(fusion_name)
    if head is None:
        head = str(getattr(fusion_cls, "default_head", "mlp") or "mlp")
    head_name, head_kwargs = registry.parse_spec(head)
    head_cls = registry.get_head_class(head_name)
    if aux_losses is None:
        aux_losses = discover_aux_losses(fusion, head)
    space = SearchSpace(fusion=fusion, head=head, mode=mode, aux_losses=tuple(aux_losses))
    for param in training_space(mode, aux_losses):
        space.params[param.name] = param
        space.names[(TRAIN, param.name)] = param.name
    for component, cls, name, spec_kwargs in (
        (FUSION, fusion_cls, fusion_name, fusion_kwargs),
        (HEAD, head_cls, head_name, head_kwargs),
    ):
        plugin = read_plugin_space(cls, name)
        if plugin.legacy:
            space.legacy += (component,)
        for declared in plugin.params:
            optuna_name = space.optuna_name(component, declared.name)
            space.names[(component, declared.name)] = optuna_name
            param = Param(
                optuna_name,
                component,
                declared.name,
                declared.distribution,
                source=f"{component} {name}",
                hyperparameter=declared.hyperparameter,
            )
            if declared.hyperparameter is not None:
                fixing = [declared.hyperparameter] if declared.hyperparameter in spec_kwargs else []
            else:  # a legacy space names its parameters freely: match the usual spellings
                fixing = [k for k in spec_kwargs if declared.name in (k, f"{component}_{k}", f"{name}_{k}")]
            for kwarg in fixing:  # fixed by the spec string
                param.distribution, param.fixed, param.source = None, spec_kwargs[kwarg], f"spec {component}"
            space.params[optuna_name] = param
    if overrides:
        space.apply_overrides(overrides, overrides_source)
    return space
