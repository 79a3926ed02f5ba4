"""Training protocols: train-time protocols that change *how* a model learns, not the data it sees.

A data protocol (``missing_image``, ``label_noise``) perturbs batches or labels; a training protocol
(``target = "training"``: ``ogm_ge``, ``gblend``) leaves every batch untouched (``apply`` is the
identity) and instead gives the trainer a :class:`TrainingHook` for the run:

    hook.module              an nn.Module trained with the model (extra heads), or None
    hook.loss(batch, out, total, parts) -> (total, parts)   after the loss of each training batch
    hook.after_backward()    after ``backward()``, before clipping and the optimiser step
    hook.on_fit_start(trainer) / on_step / on_epoch_end(trainer, epoch, record) / on_fit_end
                             the trainer's callback events (``record`` is the history row)

The level is the protocol's coefficient; level 0 is the plain run (``canonical_train_protocol`` maps
``SPEC@0`` to ``""``). Both built-ins need a fusion with **per-modality branches**
(``Fusion.modality_branches``, see :mod:`fusionzoo.interface`): each modality is encoded alone into a
``(B, D)`` feature before the modalities meet, so a modality's own decision (the model with the
other modality masked out) and its own features are defined. :meth:`TrainingProtocol.check_fusion`
refuses any other fusion before work starts, naming the fusion and why.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from fusionzoo import registry
from fusionzoo.interface import MODALITIES
from fusionzoo.protocols.base import Protocol

__all__ = ["TrainingHook", "TrainingProtocol", "branch_fusions", "masked_logits", "without_modality"]


class TrainingHook:
    """No-op base of what a training protocol plugs into one run (see the module docstring)."""

    module: nn.Module | None = None

    def loss(
        self, batch: dict[str, Any], out: Any, total: Tensor, parts: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        return total, parts

    def after_backward(self) -> None:
        pass

    def on_fit_start(self, trainer: Any) -> None:
        pass

    def on_step(self, trainer: Any, epoch: int, step: int, steps: int) -> None:
        pass

    def on_epoch_end(self, trainer: Any, epoch: int, record: dict[str, float]) -> None:
        pass

    def on_fit_end(self, trainer: Any, result: Any) -> None:
        pass


def branch_fusions() -> list[str]:
    """Registered fusions with per-modality branches over both modalities (what training protocols take)."""
    out = []
    for name in registry.list_fusions():
        cls = registry.get_fusion_class(name)
        if getattr(cls, "modality_branches", False) and set(getattr(cls, "modalities", MODALITIES)) == set(
            MODALITIES
        ):
            out.append(name)
    return out


class TrainingProtocol(Protocol):
    """Base class of training protocols (see the module docstring)."""

    stage = "train"
    stages = ("train",)
    target = "training"
    needs_branches: ClassVar[bool] = True

    def apply(self, batch: dict[str, Any], level: float, generator: torch.Generator) -> dict[str, Any]:
        """The data is untouched: a training protocol acts on gradients and losses."""
        return batch

    def check_fusion(self, fusion: str) -> None:
        """``RegistryError`` when fusion spec ``fusion`` has no per-modality branches over both modalities."""
        if not self.needs_branches:
            return
        name, _ = registry.parse_spec(fusion)
        cls = registry.get_fusion_class(name)
        modalities = tuple(getattr(cls, "modalities", MODALITIES))
        if set(modalities) != set(MODALITIES):
            why = f"it reads only {', '.join(modalities)}: there is no other modality to balance against"
        elif not getattr(cls, "modality_branches", False):
            why = (
                "it mixes the modalities before each has a representation of its own (no "
                "Fusion.modality_branches), so a modality's own decision and features are undefined"
            )
        else:
            return
        raise registry.RegistryError(
            f"train protocol '{self.registry_name}' balances per-modality branches; fusion '{name}' has "
            f"none: {why}. Fusions with per-modality branches: {', '.join(branch_fusions())}"
        )

    def hook(self, level: float, trainer: Any) -> TrainingHook:  # pragma: no cover - interface
        raise NotImplementedError(f"{type(self).__name__} must implement hook()")


def without_modality(batch: dict[str, Any], modality: str) -> dict[str, Any]:
    """A copy of a token batch in which ``modality`` is missing for every sample (all-False mask)."""
    tokens = batch[modality]
    missing = torch.zeros(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
    return {**batch, f"{modality}_mask": missing}


def masked_logits(model: nn.Module, batch: dict[str, Any]) -> dict[str, Tensor]:
    """``{m: logits (B, C)}``: each modality's own decision, the model run with the *other* modality
    masked out (no gradient). For a fusion with per-modality branches the masked modality's feature is
    zero, so with concatenation and a linear classifier this is exactly OGM-GE's split of the fused
    logits, ``W_m h_m + b`` (Peng et al. 2022, §3.2)."""
    with torch.no_grad():
        inputs = {**batch, **model.encoder(batch)} if getattr(model, "encoder", None) is not None else batch
        out = {}
        for keep, drop in (("image", "text"), ("text", "image")):
            masked = without_modality(inputs, drop)
            out[keep] = model(
                masked["image"], masked["text"], masked.get("image_mask"), masked.get("text_mask")
            ).logits.float()
    return out


def branch_parameters(model: nn.Module, modality: str) -> list[nn.Parameter]:
    """Every trainable parameter only ``modality``'s branch uses: its projection, the fusion's own
    branch parameters (``Fusion.branch_parameters``) and, in finetune mode, its encoder backbone."""
    params: list[nn.Parameter] = []
    projection = getattr(model, f"{modality}_proj", None)
    if projection is not None:
        params += list(projection.parameters())
    params += list(model.fusion.branch_parameters(modality))
    encoder = getattr(model, "encoder", None)
    backbone = getattr(encoder, f"{modality}_encoder", None) if encoder is not None else None
    if isinstance(backbone, nn.Module):
        params += list(backbone.parameters())
    seen: set[int] = set()
    return [p for p in params if p.requires_grad and not (id(p) in seen or seen.add(id(p)))]
