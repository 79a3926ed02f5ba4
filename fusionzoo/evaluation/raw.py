"""Raw-input protocols (``needs_raw``): perturb the test split's images/texts and encode them once.

For a protocol at a level > 0, :func:`perturbed_test_features` builds

- a copy of the dataset's splits whose ``fingerprint`` also covers the perturbation (protocol canonical
  spec and level) and whose test texts are perturbed (a text protocol), and
- for an image protocol, a :class:`PerturbedImageEncoder`: the same encoder whose preprocessing applies
  the corruption at the encoder's input resolution (after resize/crop, before normalisation) and whose
  identity names the perturbation,

and hands them to :func:`fusionzoo.encoders.cache.encode_splits` for the test split only. So each
(encoder, protocol, severity, seed) is encoded once into the feature cache with the cache's own keys,
integrity checks and resume, and reused by every run and every later evaluation. Per-item randomness
is seeded from the protocol's canonical spec and the item (its pixels for images, its id and text for
texts), never from the order of encoding.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from fusionzoo.data.base import fingerprint_of
from fusionzoo.protocols.base import Protocol, generator_for

__all__ = ["PerturbedImageEncoder", "perturbed_splits", "perturbed_test_features"]


class CorruptImage:
    """A PIL → PIL transform step: the protocol at ``level``, seeded by (canonical spec, pixels)."""

    def __init__(self, protocol: Protocol, level: float) -> None:
        self.protocol, self.level = protocol, float(level)

    def __call__(self, image: Any) -> Any:
        pixels = np.asarray(image)
        digest = hashlib.sha256(pixels.tobytes() + str(pixels.shape).encode()).hexdigest()
        generator = generator_for(self.protocol.canonical, digest)
        return self.protocol.apply({"image": [image]}, self.level, generator)["image"][0]

    def __repr__(self) -> str:
        return f"CorruptImage({self.protocol.canonical}, level={self.level:g})"


def corrupting_transform(transform: Any, step: CorruptImage) -> Any:
    """``transform`` with ``step`` inserted before its first tensor op (a torchvision ``Compose``), or
    applied before the whole transform otherwise."""
    from torchvision import transforms as T

    ops = list(getattr(transform, "transforms", []))
    tensor_ops = ("ToTensor", "MaybeToTensor", "PILToTensor", "ToImage", "ToDtype", "Normalize")
    for i, op in enumerate(ops):
        if type(op).__name__ in tensor_ops:
            return T.Compose([*ops[:i], step, *ops[i:]])
    return T.Compose([step, transform])


class PerturbedImageEncoder(nn.Module):
    """An image encoder whose preprocessing corrupts each image first (see the module docstring)."""

    def __init__(self, encoder: Any, protocol: Protocol, level: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.perturbation = {"protocol": protocol.canonical, "level": float(level)}
        self.transform = corrupting_transform(encoder.transform, CorruptImage(protocol, level))

    def forward(self, pixels: Any) -> Any:
        return self.encoder(pixels)

    def identity(self) -> dict[str, Any]:
        return {**self.encoder.identity(), "perturbation": self.perturbation}

    @property
    def num_tokens(self) -> int:
        return self.encoder.num_tokens

    @property
    def out_dim(self) -> int:
        return self.encoder.out_dim

    @property
    def token_selection(self) -> Any:
        return self.encoder.token_selection

    @property
    def spec(self) -> str:
        return self.encoder.spec


def perturbed_texts(frame: pd.DataFrame, protocol: Protocol, level: float) -> pd.DataFrame:
    """``frame`` with each text perturbed, seeded by (canonical spec, item id, text)."""
    texts = []
    for item_id, text in zip(frame["item_id"].astype(str), frame["text"].astype(str), strict=True):
        generator = generator_for(protocol.canonical, item_id, text)
        texts.append(protocol.apply({"text": [text]}, level, generator)["text"][0])
    return frame.assign(text=texts)


def perturbed_splits(splits: Any, protocol: Protocol, level: float) -> Any:
    """The dataset splits with a fingerprint covering the perturbation and, for a text protocol,
    perturbed test texts (train and val untouched)."""
    modalities = getattr(protocol, "raw_modalities", ("image", "text"))
    test = perturbed_texts(splits.test, protocol, level) if "text" in modalities else splits.test
    perturbation = {"protocol": protocol.canonical, "level": float(level)}
    fingerprint = fingerprint_of({"base": splits.fingerprint, "perturbation": perturbation})
    return dataclasses.replace(splits, test=test, fingerprint=fingerprint)


def perturbed_test_features(
    inputs: Any, protocol: Protocol, level: float, *, console: Any = None, progress: bool = True
) -> Any:
    """The test split's features under ``protocol`` at ``level`` (encoded once, then from the cache)."""
    from fusionzoo.encoders.cache import encode_splits
    from fusionzoo.io import disk_errors

    options = inputs.options
    modalities = getattr(protocol, "raw_modalities", ("image", "text"))
    splits = perturbed_splits(inputs.splits, protocol, level)
    image_encoder = inputs.image_encoder
    if "image" in modalities:
        image_encoder = PerturbedImageEncoder(image_encoder, protocol, level)
    enc = options.encoders
    with disk_errors(options.cache_root(), "the feature cache"):
        features = encode_splits(
            splits,
            image_encoder,
            inputs.text_encoder,
            options.cache_root(),
            split_names=("test",),
            batch_size=int(enc.get("batch_size", 64)),
            device=options.device,
            num_workers=enc.get("num_workers"),
            on_bad_image=options.on_bad_image(),
            progress=progress,
            console=console,
        )
    return features["test"]
