"""Suites: one bench over several datasets, each named by a dataset spec, and their data variants.

A **dataset spec** names a backend and its options in the plugin spec syntax,
``synth:size=800,synth_seed=1``, ``csv:csv=path.csv``, ``glami1m:root=/data``; ``--datasets`` takes
several joined by ``+`` (or a ``[suite]`` preset lists them). Two reserved keys set the encoders of
that dataset only: ``image_encoder=`` and ``text_encoder=`` (the ``--image-encoder`` syntax), so a
suite can mix the embedded dataset (its local encoders) with real sets (pretrained ones). The other
options go to the backend and override ``[data]`` for that dataset; the canonical spec (sorted keys)
is the run's ``dataset``, so ``synth:size=800`` and ``synth:size=800,synth_seed=1`` are two datasets
of the leaderboard and the cross-dataset summary.

Each dataset of the grid is expanded into its **data keys**: one per split seed (``--split-seeds``:
the train/validation split re-drawn, test fixed) and training fraction (``--train-fractions``), each
a :class:`DataKey` whose string form ``SPEC|split_seed=1|train_fraction=0.3`` is what the launchers
pass around (``RunSpec.dataset``). What they change: :mod:`fusionzoo.data.variants`.

``[suite] when_available`` specs may name environment variables (``glami1m:root=$FUSIONZOO_CHECKSET``):
they join the suite when every variable they name is set, and are left out (with a note,
:func:`left_out`) otherwise, so the packaged ``offline`` suite runs everywhere.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from fusionzoo import registry

__all__ = [
    "ENCODER_KEYS",
    "DataKey",
    "available_datasets",
    "canonical_dataset",
    "data_keys",
    "left_out",
]

ENCODER_KEYS = {"image_encoder": "image", "text_encoder": "text"}  # spec key -> [encoders] field
SEPARATOR = "|"
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def _variables(spec: str) -> list[str]:
    return [a or b for a, b in _VARIABLE.findall(spec)]


def available_datasets(specs: list[str]) -> list[str]:
    """The ``when_available`` specs whose environment variables are all set, expanded."""
    return [os.path.expandvars(s) for s in specs if all(os.environ.get(v) for v in _variables(s))]


def left_out(specs: list[str]) -> list[str]:
    """Sentences for the ``when_available`` specs that are not in the suite (a variable unset)."""
    out = []
    for spec in specs:
        unset = [v for v in _variables(spec) if not os.environ.get(v)]
        if unset:
            out.append(f"{spec.split(':')[0]} ({spec}) left out of the suite: {', '.join(unset)} not set")
    return out


def canonical_dataset(spec: str) -> str:
    """The canonical form of a dataset spec (sorted keys, values typed by the backend); a
    ``RegistryError`` for an unknown backend, a ``ValueError`` (``DataError``) for a bad option."""
    name, options = registry.parse_spec(spec)
    backend = registry.create("dataset", name)
    encoders = {k: str(options.pop(k)) for k in list(options) if k in ENCODER_KEYS}
    options = backend.check_options(options)
    return registry.format_spec(name, {**options, **encoders})


@dataclass(frozen=True)
class DataKey:
    """One dataset of the grid at one data variant; ``str(key)`` is what ``RunSpec.dataset`` holds."""

    spec: str  # the canonical dataset spec (the run's ``dataset`` column)
    split_seed: int | None = None
    train_fraction: float = 1.0
    options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def parse(cls, key: str) -> DataKey:
        spec, *variant = str(key).split(SEPARATOR)
        values = dict(part.partition("=")[::2] for part in variant)
        split = values.get("split_seed")
        return cls(spec, None if split is None else int(split), float(values.get("train_fraction", 1.0)))

    def __str__(self) -> str:
        out = self.spec
        if self.split_seed is not None:
            out += f"{SEPARATOR}split_seed={self.split_seed}"
        if self.train_fraction < 1.0:
            out += f"{SEPARATOR}train_fraction={self.train_fraction:g}"
        return out

    @property
    def name(self) -> str:
        """The backend's registered name."""
        return registry.parse_spec(self.spec)[0]

    def backend_options(self) -> dict[str, Any]:
        """The spec's backend options (the encoder keys left out)."""
        return {k: v for k, v in registry.parse_spec(self.spec)[1].items() if k not in ENCODER_KEYS}

    def encoder_options(self) -> dict[str, str]:
        """``{"image": spec, "text": spec}`` of the spec's encoder keys (only those it sets)."""
        options = registry.parse_spec(self.spec)[1]
        return {ENCODER_KEYS[k]: str(v) for k, v in options.items() if k in ENCODER_KEYS}

    @property
    def variant(self) -> str:
        """The identity part of the variant that makes a configuration of its own (the training
        fraction; a split seed only makes another run of the same configuration)."""
        from fusionzoo.data.variants import VARIANT_SEMANTICS

        if self.train_fraction >= 1.0:
            return ""
        return f"train_fraction={self.train_fraction:g};v{VARIANT_SEMANTICS}"

    def base(self) -> DataKey:
        """The dataset as its loader returns it (no variant)."""
        return DataKey(self.spec)


def data_keys(datasets: list[str], split_seeds: list[int], train_fractions: list[float]) -> list[DataKey]:
    """Every dataset × split seed × training fraction (datasets first, in their given order)."""
    splits: list[int | None] = list(split_seeds) or [None]
    fractions = list(train_fractions) or [1.0]
    return [DataKey(d, s, f) for d in datasets for s in splits for f in fractions]
