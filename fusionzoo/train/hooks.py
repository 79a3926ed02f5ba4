"""The hooks a run's trainer plugs into its loop: a training protocol's (``ogm_ge``, ``gblend``) and
distillation's. Here, above both the protocols and the distillation loss, so neither reaches up."""

from __future__ import annotations

from typing import Any

from fusionzoo import registry
from fusionzoo.protocols._train_time import training_protocol_of
from fusionzoo.train.distill import DistillHook

__all__ = ["training_hooks"]


def training_hooks(config: Any, trainer: Any) -> list[Any]:
    """The hooks ``trainer`` (built up to its model and loss) plugs into its loop: the
    :class:`~fusionzoo.protocols._training.TrainingHook` of a training protocol (``ogm_ge``, ``gblend``)
    and distillation's (:class:`~fusionzoo.train.distill.DistillHook`); ``[]`` for a plain run."""
    hooks = []
    found = training_protocol_of(config)
    if found is not None:
        protocol, level = found
        hooks.append(protocol.hook(level, trainer))
    if getattr(config, "distill_teacher", ""):
        hooks.append(DistillHook(trainer))
    if hooks and getattr(trainer, "group", None) is not None:
        raise registry.RegistryError(
            f"{config.train_protocol or 'distillation'} under DDP: its hook reads one process's batch and "
            "gradients (each rank would modulate or weigh differently): train it in one process"
        )
    return hooks
