"""Capacity-matched baselines: widen or deepen a baseline until its parameter count matches a target.

FLUID's Table 1 compares FLUID (6 Q-Former blocks per modality + a 16-expert MoE head, ~119M
trainable parameters at D = 768) with baselines at their defaults (2.7M–22M). The leaderboard's
``params`` column shows that gap; :func:`match_capacity` removes it when a comparison at equal
capacity is wanted: it picks the value of one of the baseline's own size knobs (``layers``,
``hidden_mult``, ``ffn_mult``, ``rank``; :data:`CAPACITY_KNOBS`) so that the whole model (projections
+ fusion + head, what ``params`` counts) is within ``tolerance`` (default ±10%) of the target, and
returns the spec to put in a preset::

    from fusionzoo.bench.capacity import match_capacity, model_parameters
    shapes = dict(image_dim=768, text_dim=768, dim=768, num_classes=191, num_image_tokens=197)
    target = model_parameters("fluid:layers=6,heads=8,ffn_mult=4.0,queries=32", "moe", **shapes)
    match_capacity("early_fusion", target, **shapes).fusion   # 'early_fusion:layers=16'

Models are built on PyTorch's ``meta`` device (no memory, no initialisation cost). An integer knob
(``layers``, ``rank``) takes the value whose count is closest to the target; a float knob
(``hidden_mult``, ``ffn_mult``) is bisected on the (monotone) count. If the first knob cannot get
within the tolerance the next one is tuned with the first fixed. Nothing here changes a default:
capacity matching is an explicit, documented option (``docs/benchmarking.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from fusionzoo import registry

__all__ = ["CAPACITY_KNOBS", "CapacityMatch", "match_capacity", "model_parameters"]

# per fusion, the size knobs tried in order (int knobs first: they set the depth, floats fine-tune)
CAPACITY_KNOBS: dict[str, tuple[str, ...]] = {
    "concat_mlp": ("hidden_mult",),
    "cross_attention": ("ffn_mult",),
    "early_fusion": ("layers", "ffn_mult"),
    "energy_aware_adaptive": ("hidden_mult",),
    "fluid": ("layers", "ffn_mult"),
    "image_only": ("hidden_mult",),
    "lmf": ("rank",),
    "modality_dropout": ("hidden_mult",),
    "qformer": ("layers", "ffn_mult"),
    "shomr": ("ffn_mult",),
    "text_only": ("hidden_mult",),
    "transformer_concat": ("layers", "ffn_mult"),
}
INT_RANGE = (1, 64)
FLOAT_RANGE = (1 / 64, 256.0)


@dataclass(frozen=True)
class CapacityMatch:
    """The matched ``fusion`` spec (and ``head``), its ``params``, the ``target`` and ``params/target``."""

    fusion: str
    head: str
    params: int
    target: int

    @property
    def ratio(self) -> float:
        return self.params / self.target


def model_parameters(
    fusion: str,
    head: str | None = None,
    *,
    image_dim: int,
    text_dim: int,
    dim: int,
    num_classes: int,
    num_image_tokens: int,
    **model_options: Any,
) -> int:
    """Trainable parameters of ``FusionModel(fusion, head)`` (the leaderboard's ``params``), on ``meta``."""
    from fusionzoo.train.model import FusionModel, count_parameters

    head = head or _default_head(fusion)
    with torch.device("meta"):
        model = FusionModel(
            fusion,
            head,
            image_dim=image_dim,
            text_dim=text_dim,
            dim=dim,
            num_classes=num_classes,
            num_image_tokens=num_image_tokens,
            **model_options,
        )
    return count_parameters(model)


def _default_head(fusion: str) -> str:
    name, _ = registry.parse_spec(fusion)
    return str(getattr(registry.get_fusion_class(name), "default_head", "mlp") or "mlp")


def _spec(name: str, options: dict[str, Any]) -> str:
    if not options:
        return name
    return name + ":" + ",".join(f"{key}={value}" for key, value in sorted(options.items()))


def match_capacity(
    fusion: str,
    target: int,
    *,
    head: str | None = None,
    knobs: tuple[str, ...] | None = None,
    tolerance: float = 0.10,
    **shapes: Any,
) -> CapacityMatch:
    """The spec of ``fusion`` (its other options kept) whose model has ``target`` ± ``tolerance`` params.

    ``shapes``: ``image_dim``, ``text_dim``, ``dim``, ``num_classes``, ``num_image_tokens`` (and any
    other ``FusionModel`` option). ``knobs`` overrides :data:`CAPACITY_KNOBS`. Raises ``ValueError``
    when the knobs cannot reach the target within the tolerance (e.g. a fusion without a size knob).
    """
    name, options = registry.parse_spec(fusion)
    head = head or _default_head(fusion)
    knobs = tuple(knobs if knobs is not None else CAPACITY_KNOBS.get(name, ()))
    if not knobs:
        raise ValueError(
            f"fusion '{name}' has no size knob to match a parameter count; known: "
            f"{', '.join(sorted(CAPACITY_KNOBS))} (or pass knobs=...)"
        )
    defaults = registry.hyperparameters(registry.get_fusion_class(name))
    unknown = [k for k in knobs if k not in defaults]
    if unknown:
        raise ValueError(f"fusion '{name}' has no hyperparameter(s) {', '.join(unknown)}")

    def count(values: dict[str, Any]) -> int:
        return model_parameters(_spec(name, {**options, **values}), head, **shapes)

    chosen: dict[str, Any] = {}
    params = count(chosen)
    for knob in knobs:
        if abs(params / target - 1) <= tolerance:
            break
        if isinstance(defaults[knob].default, int) and not isinstance(defaults[knob].default, bool):
            value, params = _best_int(lambda v, knob=knob: count({**chosen, knob: v}), target)
        else:
            value, params = _bisect_float(lambda v, knob=knob: count({**chosen, knob: v}), target)
        chosen[knob] = value
    if abs(params / target - 1) > tolerance:
        raise ValueError(
            f"could not match {target:,} parameters with {name} ({', '.join(knobs)}): best {params:,} "
            f"({_spec(name, {**options, **chosen})})"
        )
    return CapacityMatch(_spec(name, {**options, **chosen}), head, params, int(target))


def _best_int(count: Any, target: int) -> tuple[int, int]:
    low, high = INT_RANGE
    best = (low, count(low))
    for value in range(low + 1, high + 1):
        params = count(value)
        if abs(params - target) < abs(best[1] - target):
            best = (value, params)
        if params > target:
            break
    return best


def _bisect_float(count: Any, target: int, steps: int = 30) -> tuple[float, int]:
    low, high = FLOAT_RANGE
    for _ in range(steps):
        mid = (low * high) ** 0.5
        if count(round(mid, 3)) < target:
            low = mid
        else:
            high = mid
    candidates = [(round(v, 3), count(round(v, 3))) for v in (low, high)]
    return min(candidates, key=lambda c: abs(c[1] - target))
