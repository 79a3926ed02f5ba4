"""The per-call checks of the ``(B,·,D)`` contract: what a fusion's and a head's outputs must be.

:class:`~fusionzoo.train.model.FusionModel` runs them on the first batch of a run and the contract
suites (:mod:`fusionzoo.testing.contracts`) on every shape they try; a violation raises
:class:`ContractError` naming the plugin and the rule.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from fusionzoo.errors import FusionzooError
from fusionzoo.interface import FusionOutput, HeadOutput
from fusionzoo.layers.decisions import DECISION_MODES

__all__ = ["ContractError", "check_aux", "validate_fusion_output", "validate_head_output"]


class ContractError(FusionzooError, AssertionError):
    """A plugin broke the ``(B,·,D)`` contract; the message names the plugin and the rule."""

    def __init__(self, plugin: str, rule: str, detail: str) -> None:
        super().__init__(f"plugin '{plugin}' violates rule '{rule}': {detail}")
        self.plugin, self.rule, self.detail = plugin, rule, detail


def check_aux(name: str, where: str, aux: Any) -> None:
    if not isinstance(aux, dict):
        raise ContractError(name, f"{where} is a dict", f"got {type(aux).__name__}")
    for key, value in aux.items():
        if not isinstance(key, str):
            raise ContractError(name, f"{where} keys are str", f"got key {key!r}")
        if not isinstance(value, Tensor) or value.dim() != 0:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ContractError(name, "aux losses are scalar tensors", f"'{key}' is {shape}")
        if not torch.isfinite(value):
            raise ContractError(name, "aux losses are finite", f"'{key}' = {value.item()}")


def validate_fusion_output(out: Any, batch: int, dim: int, name: str) -> None:
    """Cheap per-call check of one fusion output (the trainer runs it on the first batch)."""
    if not isinstance(out, FusionOutput):
        raise ContractError(name, "forward returns FusionOutput", f"got {type(out).__name__}")
    tokens = out.tokens
    if not isinstance(tokens, Tensor) or tokens.dim() != 3:
        shape = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
        raise ContractError(name, "tokens have shape (B, Nf, D)", f"got {shape}")
    if tokens.shape[0] != batch or tokens.shape[2] != dim or tokens.shape[1] < 1:
        raise ContractError(
            name, "tokens have shape (B, Nf, D)", f"expected ({batch}, >=1, {dim}), got {tuple(tokens.shape)}"
        )
    if not tokens.is_floating_point():
        raise ContractError(name, "tokens are floating point", f"got {tokens.dtype}")
    if not torch.isfinite(tokens).all():
        raise ContractError(name, "tokens are finite", "output contains NaN or inf")
    if out.mask is not None and (
        out.mask.dtype != torch.bool or tuple(out.mask.shape) != tuple(tokens.shape[:2])
    ):
        raise ContractError(
            name,
            "mask is (B, Nf) bool",
            f"got {tuple(out.mask.shape)} {out.mask.dtype} for {tuple(tokens.shape)}",
        )
    check_aux(name, "aux_losses", out.aux_losses)
    if not isinstance(out.extras, dict):
        raise ContractError(name, "extras is a dict", f"got {type(out.extras).__name__}")
    _check_decisions(out, name)
    _check_modality_features(out, batch, dim, name)


def _check_modality_features(out: FusionOutput, batch: int, dim: int, name: str) -> None:
    """``modality_features`` is ``{}`` or one finite ``(B, D)`` tensor per modality."""
    features = out.modality_features
    if not isinstance(features, dict):
        raise ContractError(name, "modality_features is a dict", f"got {type(features).__name__}")
    for modality, value in features.items():
        if not isinstance(value, Tensor) or tuple(value.shape) != (batch, dim):
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ContractError(name, f"modality_features[{modality!r}] is (B, D)", f"got {shape}")
        if not torch.isfinite(value).all():
            raise ContractError(name, f"modality_features[{modality!r}] is finite", "NaN or inf")


def _check_decisions(out: FusionOutput, name: str) -> None:
    """``decisions`` is None, "logits" or "probs"; ``decision_weights`` a positive finite (B, Nf) tensor."""
    if out.decisions not in (None, *DECISION_MODES):
        raise ContractError(name, "decisions is None, 'logits' or 'probs'", f"got {out.decisions!r}")
    weights = out.decision_weights
    if weights is None:
        return
    if out.decisions is None:
        raise ContractError(name, "decision_weights come with decisions", "decisions is None")
    if not isinstance(weights, Tensor) or tuple(weights.shape) != tuple(out.tokens.shape[:2]):
        shape = tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
        raise ContractError(
            name, "decision_weights are (B, Nf)", f"got {shape} for tokens {tuple(out.tokens.shape)}"
        )
    if not weights.is_floating_point() or not torch.isfinite(weights).all() or (weights <= 0).any():
        raise ContractError(name, "decision_weights are positive and finite", f"got {weights}")


def validate_head_output(out: Any, batch: int, num_classes: int, name: str) -> None:
    """Cheap per-call check of one head output."""
    if not isinstance(out, HeadOutput):
        raise ContractError(name, "forward returns HeadOutput", f"got {type(out).__name__}")
    if not isinstance(out.logits, Tensor) or tuple(out.logits.shape) != (batch, num_classes):
        shape = tuple(out.logits.shape) if isinstance(out.logits, Tensor) else type(out.logits).__name__
        raise ContractError(
            name, "logits have shape (B, C)", f"expected ({batch}, {num_classes}), got {shape}"
        )
    if not torch.isfinite(out.logits).all():
        raise ContractError(name, "logits are finite", "output contains NaN or inf")
    check_aux(name, "aux_losses", out.aux_losses)
    if not isinstance(out.extras, dict):
        raise ContractError(name, "extras is a dict", f"got {type(out.extras).__name__}")
