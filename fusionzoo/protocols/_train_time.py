"""Train-time protocols: the training data a run sees when its RunConfig names ``train_protocol``.

``RunConfig.train_protocol = "SPEC@LEVEL"`` (e.g. ``missing_image@0.3``, ``label_noise:mode=class_conditional@0.2``)
is part of the run's identity (its config hash). :func:`with_train_protocol` wraps the run's
:class:`~fusionzoo.train.inputs.TrainingData`:

- a token protocol (``missing_image``, ``feature_noise``, ...) perturbs every *training* batch with a
  generator seeded from the run seed and the spec (fresh draws each epoch, like dropout); validation
  and test batches stay clean;
- a label protocol (``label_noise``) flips the training labels once (seeded by the protocol's own
  ``seed``: the same noisy labels for every fusion and run seed), and the validation labels too when
  its ``val`` option is on; the test labels are never changed;
- a training protocol (``target = "training"``: ``ogm_ge``, ``gblend``) leaves the data alone and
  plugs a hook into the trainer instead (:func:`fusionzoo.train.hooks.training_hooks`, :mod:`fusionzoo.protocols._training`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fusionzoo import registry
from fusionzoo.protocols.base import Protocol, generator_for

__all__ = [
    "TrainProtocolData",
    "canonical_train_protocol",
    "changes_training",
    "check_train_protocol_fusion",
    "expand_train_protocols",
    "parse_train_protocol",
    "with_train_protocol",
]


def parse_train_protocol(text: str) -> tuple[Protocol, float]:
    """``(protocol, level)`` of ``SPEC@LEVEL``; a clear error for anything else."""
    spec, at, level_text = str(text).rpartition("@")
    if not at or not spec:
        raise registry.RegistryError(
            f"train protocol {text!r} must look like SPEC@LEVEL, e.g. missing_image@0.3 or "
            "label_noise:mode=uniform@0.2"
        )
    try:
        level = float(level_text)
    except ValueError:
        raise registry.RegistryError(
            f"train protocol {text!r}: level {level_text!r} is not a number"
        ) from None
    protocol = registry.create("protocol", spec)
    if "train" not in protocol.stages:
        train_ok = [
            n
            for n in registry.list_plugins("protocol")
            if "train" in registry.get_entry("protocol", n).obj.stages
        ]
        raise registry.RegistryError(
            f"protocol '{protocol.registry_name}' cannot be used at training time (stages: "
            f"{', '.join(protocol.stages)}); train-time protocols: {', '.join(train_ok)}"
        )
    return protocol, protocol.check_level(level)


def canonical_train_protocol(text: str) -> str:
    """The canonical ``SPEC@LEVEL`` (level 0 → ``""``: training on clean data is the plain run)."""
    if not text:
        return ""
    protocol, level = parse_train_protocol(text)
    return "" if level == 0 else f"{protocol.canonical}@{level:g}"


def expand_train_protocols(items: list[str]) -> list[str]:
    """The grid's train-time axis: each ``SPEC@LEVEL`` canonicalised, each bare ``SPEC`` expanded to
    its levels (``label_noise:rates=0;0.2;0.4`` → three runs); ``[]`` → ``[""]`` (clean training only).
    Level 0 is the clean run ``""``; duplicates are dropped, order kept."""
    out: list[str] = []
    for item in items or [""]:
        if not item or "@" in item:
            expanded = [canonical_train_protocol(item)]
        else:
            protocol = registry.create("protocol", item)
            expanded = [canonical_train_protocol(f"{item}@{level:g}") for level in protocol.levels()]
        out.extend(e for e in expanded if e not in out)
    return out


class TrainProtocolData:
    """A TrainingData whose training (and for label noise, validation) split is perturbed."""

    def __init__(self, data: Any, protocol: Protocol, level: float, run_seed: int) -> None:
        self._data, self.protocol, self.level = data, protocol, float(level)
        self._generator = generator_for("train", protocol.canonical, level, run_seed)
        self._labels: dict[str, np.ndarray] = {}
        if protocol.target == "labels":
            splits = ("train", "val") if getattr(protocol, "val", False) else ("train",)
            for split in splits:
                clean = torch.from_numpy(np.asarray(data.labels(split), dtype=np.int64))
                batch = {"label": clean, "num_classes": data.num_classes, "index": torch.arange(len(clean))}
                noisy = protocol.apply(batch, level, generator_for(split, protocol.canonical, level))["label"]
                self._labels[split] = np.asarray(noisy, dtype=np.int64)
        elif protocol.target != "tokens":
            raise registry.RegistryError(
                f"protocol '{protocol.registry_name}' perturbs {protocol.target} inputs; at training time only "
                "token and label protocols are supported"
            )
        else:
            protocol.fit(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._data, name)

    def labels(self, split: str) -> np.ndarray:
        return self._labels[split] if split in self._labels else self._data.labels(split)

    def batch(self, split: str, indices: torch.Tensor) -> dict[str, Any]:
        batch = self._data.batch(split, indices)
        if split in self._labels:
            batch = {**batch, "label": torch.from_numpy(self._labels[split][indices.numpy()])}
        elif split == "train" and self.protocol.target == "tokens":
            batch = self.protocol.apply(batch, self.level, self._generator)
        return batch


def with_train_protocol(config: Any, data: Any) -> Any:
    """``data`` itself, or wrapped when ``config.train_protocol`` is set (see the module docstring)."""
    text = getattr(config, "train_protocol", "")
    if not text:
        return data
    protocol, level = parse_train_protocol(text)
    if level == 0 or protocol.target == "training":
        return data
    make_encoder = getattr(data, "make_encoder", None)
    if protocol.target == "tokens" and make_encoder is not None and make_encoder() is not None:
        raise registry.RegistryError(
            f"train protocol '{text}' perturbs cached tokens; finetune runs encode inside the model: use "
            "--mode frozen (label_noise works in both modes)"
        )
    return TrainProtocolData(data, protocol, level, int(config.seed))


def training_protocol_of(config: Any) -> tuple[Protocol, float] | None:
    """``(protocol, level)`` of ``config``'s training protocol above level 0 (``ogm_ge``, ``gblend``)."""
    text = getattr(config, "train_protocol", "")
    if not text:
        return None
    protocol, level = parse_train_protocol(text)
    return (protocol, level) if level != 0 and protocol.target == "training" else None


def changes_training(config: Any) -> bool:
    """Does ``config`` plug hooks into the training loop (a training protocol at a level above 0, or a
    distillation teacher)? Such runs need the plain per-run trainer (e.g. they cannot be stacked with
    other seeds into one batched model: their hooks read one model's gradients and outputs)."""
    return training_protocol_of(config) is not None or bool(getattr(config, "distill_teacher", ""))


def check_train_protocol_fusion(train_protocol: str, fusion: str) -> None:
    """``RegistryError`` when ``train_protocol`` cannot train ``fusion`` (a training protocol that needs
    per-modality branches and a fusion without them); nothing for data protocols."""
    if not train_protocol:
        return
    protocol, _ = parse_train_protocol(train_protocol)
    check = getattr(protocol, "check_fusion", None)
    if check is not None:
        check(fusion)
