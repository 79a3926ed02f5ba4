"""Data variants of a loaded dataset: a re-drawn train/validation split and a smaller training set.

Both leave the **test split unchanged** (the benchmark), and both start from the dataset as its
loader returns it (:class:`~fusionzoo.data.base.DatasetSplits`), so they work for every backend:

- ``split_seed = s`` (``bench --split-seeds``): the train and validation rows are pooled and the
  validation part is drawn again with :func:`~fusionzoo.data.loading.stratified_split`, seeded by
  ``s``, stratified by label and grouped by image file (items sharing an image stay on one side), at
  the validation fraction the loader produced (``|val| / (|train| + |val|)``). A dataset with its own
  validation split (Hateful Memes' dev, N24News' dev) is pooled the same way. ``None`` keeps the
  loader's split.
- ``train_fraction = f`` (``bench --train-fractions``): a stratified subset of ``f`` of the training
  rows (at least one row per class), **nested**: the rows of each class are put in one seeded random
  order (seed ``split_seed`` or 0) and the first ``ceil(f · n_c)`` are kept, so the training set at
  0.1 is inside the one at 0.3, and a learning curve adds data instead of drawing new sets. The
  validation and test splits are the same at every fraction. ``1.0`` keeps every row.

The variant's fingerprint is the dataset's fingerprint with the variant and
:data:`VARIANT_SEMANTICS` hashed in, so its feature-cache entries (keyed by the split's item ids
anyway) and the runs on it are its own.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from fusionzoo.data.base import DataError, DatasetSplits, fingerprint_of
from fusionzoo.data.loading import stratified_split

__all__ = ["VARIANT_SEMANTICS", "apply_variant", "check_train_fraction", "nested_subset", "variant_label"]

# version of what a variant means (how the split is re-drawn, how the subset is drawn): in the
# fingerprint of every variant and in the run identity's variant part
VARIANT_SEMANTICS = 1


def check_train_fraction(fraction: float) -> float:
    """``fraction`` as a float in (0, 1], or a :class:`DataError` naming it."""
    value = float(fraction)
    if not 0.0 < value <= 1.0 or not math.isfinite(value):
        raise DataError(f"train fraction must lie in (0, 1], got {fraction!r}")
    return value


def variant_label(split_seed: int | None, train_fraction: float = 1.0) -> str:
    """``"split_seed=2,train_fraction=0.3"``: the variant in words (``""`` for the loader's data)."""
    parts = [] if split_seed is None else [f"split_seed={int(split_seed)}"]
    if float(train_fraction) < 1.0:
        parts.append(f"train_fraction={float(train_fraction):g}")
    return ",".join(parts)


def nested_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted row indices of a stratified ``fraction`` of the rows: per class the first
    ``ceil(fraction · n_c)`` (at least 1) of one seeded permutation, so smaller fractions are subsets
    of larger ones (same seed)."""
    fraction = check_train_fraction(fraction)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        order = rng.permutation(rows)
        keep.append(order[: max(1, math.ceil(fraction * len(rows) - 1e-9))])
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def apply_variant(
    splits: DatasetSplits, split_seed: int | None = None, train_fraction: float = 1.0
) -> DatasetSplits:
    """``splits`` with the train/validation split re-drawn (``split_seed``) and/or the training set
    cut to ``train_fraction`` (module docstring); the same object when neither is asked for."""
    train_fraction = check_train_fraction(train_fraction)
    if split_seed is None and train_fraction >= 1.0:
        return splits
    train, val = splits.train, splits.val
    if split_seed is not None:
        if int(split_seed) < 0:
            raise DataError(f"split seeds must be integers >= 0, got {split_seed}")
        pool = pd.concat([train, val], ignore_index=True)
        fraction = len(val) / max(1, len(pool))
        held_out = stratified_split(
            pool["label"].to_numpy(), fraction, int(split_seed), pool["image_path"].to_numpy()
        )
        train, val = pool.loc[~held_out], pool.loc[held_out]
    if train_fraction < 1.0:
        rows = nested_subset(train["label"].to_numpy(), train_fraction, int(split_seed or 0))
        train = train.iloc[rows]
    label = variant_label(split_seed, train_fraction)
    info = {**splits.info, "variant": label}
    info["sizes"] = {"train": len(train), "val": len(val), "test": len(splits.test)}
    return dataclasses.replace(
        splits,
        train=train.reset_index(drop=True),
        val=val.reset_index(drop=True),
        fingerprint=fingerprint_of(
            {"dataset": splits.fingerprint, "variant": label, "semantics": VARIANT_SEMANTICS}
        ),
        info=info,
    )
