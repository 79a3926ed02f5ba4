"""The evaluation-protocol contract: :func:`check_protocol`, generic over
:class:`fusionzoo.protocols.base.Protocol`.

    from fusionzoo.testing import check_protocol
    check_protocol("missing_image:rates=0;0.5;1")   # a registered spec, a Protocol subclass, an instance

Declarations: a non-empty ``name``, ``stage`` ``test`` or ``train``, ``levels()`` a non-empty list of
finite numbers >= 0 (rates in [0, 1], or a grid such as σ). Token-batch protocols (``needs_raw = False``) are then applied to a seeded batch in
the trainer's format (``image (B, Ni, Ei)``, ``text (B, Nt, Et)`` float32, their bool masks with ragged
text, ``label`` and ``index`` int64; :func:`example_batch`) at level 0 and at every declared level:

- ``apply`` returns a dict and leaves its input batch unchanged (it returns a perturbed copy);
- level 0 returns the batch unchanged (the clean result, exactly);
- deterministic given a seed: two calls with generators seeded alike return equal batches;
- the output keeps the keys, shapes and dtypes of the input (masks stay bool) and float tensors stay
  finite.

Protocols that perturb raw inputs (``needs_raw = True``) are re-encoded by the evaluation, not applied
to token batches; they are checked for their declarations only.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import Tensor

from fusionzoo.testing._plugins import build_plugin
from fusionzoo.testing.contracts import ContractError

__all__ = ["check_protocol", "example_batch"]


def example_batch(
    seed: int = 0,
    batch: int = 6,
    image_tokens: int = 3,
    text_tokens: int = 5,
    image_dim: int = 8,
    text_dim: int = 6,
) -> dict[str, Tensor]:
    """A seeded token batch like ``FeatureData.batch`` yields (ragged text, one text of length 1)."""
    g = torch.Generator().manual_seed(1000 + seed)
    lengths = torch.randint(1, text_tokens + 1, (batch,), generator=g)
    lengths[0], lengths[-1] = 1, text_tokens
    return {
        "image": torch.randn(batch, image_tokens, image_dim, generator=g),
        "image_mask": torch.ones(batch, image_tokens, dtype=torch.bool),
        "text": torch.randn(batch, text_tokens, text_dim, generator=g),
        "text_mask": torch.arange(text_tokens).unsqueeze(0) < lengths.unsqueeze(1),
        "label": torch.randint(0, 4, (batch,), generator=g),
        "index": torch.arange(batch),
    }


def _clone(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v.clone() if isinstance(v, Tensor) else v for k, v in batch.items()}


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    keys = sorted(a.keys() | b.keys())
    out = []
    for key in keys:
        x, y = a.get(key), b.get(key)
        if isinstance(x, Tensor) and isinstance(y, Tensor):
            if x.shape != y.shape or x.dtype != y.dtype or not torch.equal(x, y):
                out.append(key)
        elif x is not y and x != y:
            out.append(key)
    return out


def check_protocol(target: Any, seed: int = 0, **hp: Any) -> None:
    """Validate a protocol plugin (see the module docstring); ``hp``: constructor keyword arguments."""
    from fusionzoo.protocols.base import Protocol

    protocol, name = build_plugin("protocol", target, Protocol, hp)
    levels = _check_declarations(name, protocol)
    if getattr(protocol, "needs_raw", False):
        return
    batch = example_batch(seed)
    for level in [0.0, *levels]:
        out = _apply(name, protocol, batch, level, seed)
        _check_structure(name, batch, out, level)
        again = _apply(name, protocol, _clone(batch), level, seed)
        changed = _differences(out, again)
        if changed:
            raise ContractError(
                name,
                "deterministic given a seed",
                f"level {level}: two calls with generators seeded {seed} differ in {', '.join(changed)}",
            )
        if level == 0:
            changed = _differences(batch, out)
            if changed:
                raise ContractError(
                    name, "level 0 returns the batch unchanged", f"changed: {', '.join(changed)}"
                )


def _check_declarations(name: str, protocol: Any) -> list[float]:
    if not isinstance(getattr(protocol, "name", None), str) or not protocol.name:
        raise ContractError(name, "declares a name", f"name = {getattr(protocol, 'name', None)!r}")
    if getattr(protocol, "stage", None) not in ("test", "train"):
        raise ContractError(name, "stage is test or train", f"stage = {getattr(protocol, 'stage', None)!r}")
    rule = "levels() are finite numbers >= 0"
    try:
        levels = list(protocol.levels())
    except Exception as exc:
        raise ContractError(name, rule, f"levels() raised {type(exc).__name__}: {exc}") from exc
    if not levels:
        raise ContractError(name, rule, "levels() is empty")
    for level in levels:
        if (
            isinstance(level, bool)
            or not isinstance(level, numbers.Real)
            or not 0 <= float(level) < float("inf")
        ):
            raise ContractError(name, rule, f"got {level!r}")
    return [float(level) for level in levels]


def _apply(name: str, protocol: Any, batch: dict[str, Any], level: float, seed: int) -> dict[str, Any]:
    before = _clone(batch)
    try:
        out = protocol.apply(batch, level, torch.Generator().manual_seed(seed))
    except Exception as exc:
        raise ContractError(
            name, "apply works on a token batch", f"level {level}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(out, dict):
        raise ContractError(name, "apply returns a batch dict", f"level {level}: got {type(out).__name__}")
    changed = _differences(before, batch)
    if changed:
        raise ContractError(
            name, "apply leaves its input unchanged", f"level {level}: modified {', '.join(changed)} in place"
        )
    return out


def _check_structure(name: str, batch: dict[str, Any], out: dict[str, Any], level: float) -> None:
    if set(out) != set(batch):
        raise ContractError(
            name,
            "output keeps the batch keys",
            f"level {level}: missing {sorted(set(batch) - set(out))}, extra {sorted(set(out) - set(batch))}",
        )
    for key, value in batch.items():
        new = out[key]
        if not isinstance(new, Tensor) or new.shape != value.shape:
            shape = tuple(new.shape) if isinstance(new, Tensor) else type(new).__name__
            raise ContractError(
                name, "output keeps shapes", f"level {level}: {key} {tuple(value.shape)} became {shape}"
            )
        if new.dtype != value.dtype:
            rule = "masks stay bool" if key.endswith("_mask") else "output keeps dtypes"
            raise ContractError(name, rule, f"level {level}: {key} {value.dtype} became {new.dtype}")
        if new.is_floating_point() and not torch.isfinite(new).all():
            raise ContractError(name, "float tensors stay finite", f"level {level}: {key} has NaN or inf")
