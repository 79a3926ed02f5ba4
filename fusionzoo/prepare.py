"""Dataset + encoder options + mode → the data a run trains on, in two steps.

1. :func:`resolve_inputs` loads the dataset (the embedded ``synth`` one is generated on first use) and
   builds the encoders (the dataset backend's defaults unless named), **without encoding anything**,
   and computes the data fingerprint: the cache keys of the three splits (dataset files and image
   files, loader options, limit and filters, the split's item ids, the encoders' identities, token
   selection, bad-image policy) in frozen mode, or the same inputs plus freezing/augmentation in
   finetune mode. This fingerprint is part of every run's identity, so a changed input is a new run.
2. :func:`materialise` turns resolved inputs into the ``TrainingData`` ``Trainer`` consumes: the
   feature cache (``fusionzoo.encoders.cache.encode_splits``: encoded once, then memory-mapped) in
   frozen mode, :class:`~fusionzoo.encoders.live.LiveData` (encoders in the training graph, a fresh copy
   per run) in finetune mode.

:func:`check_split_sizes` refuses empty or too-small splits before any encoding, and
:func:`cache_status` tells ``--dry-run`` what exists without generating or encoding anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusionzoo.encoders.features import prefix_tokens
from fusionzoo.errors import FusionzooError
from fusionzoo.train.inputs import FeatureData, TrainingData

__all__ = [
    "DataOptions",
    "PrepareError",
    "ResolvedInputs",
    "cache_status",
    "check_split_sizes",
    "encode_features",
    "materialise",
    "prepare_data",
    "resolve_inputs",
]

MIN_TRAIN_ROWS = 2


class PrepareError(FusionzooError, RuntimeError):
    """The dataset or its features cannot be prepared; the message says why and what to do."""


@dataclass
class DataOptions:
    """How to get one dataset's training data."""

    dataset: str = "synth"
    data_dir: str | None = None
    limit: int | None = None
    mode: str = "frozen"
    seed: int = 0  # of the validation carve-out and subsampling: fixed across the grid's seeds
    data: dict[str, Any] = field(default_factory=dict)  # the backend's options
    encoders: dict[str, Any] = field(default_factory=dict)  # image, text, batch_size, text_max_length, ...
    cache_dir: str | None = None
    device: str = "cpu"
    freeze_layers: int = 0
    split_seed: int | None = None  # re-draw train/validation with this seed (test fixed): data/variants.py
    train_fraction: float = 1.0  # train on this nested stratified fraction of the training rows

    def cache_root(self) -> Path:
        from fusionzoo.encoders.cache_format import default_cache_dir

        return Path(self.cache_dir) if self.cache_dir else default_cache_dir(self.data_dir)

    def on_bad_image(self) -> str:
        return str(self.data.get("on_bad_image", "skip"))


@dataclass
class ResolvedInputs:
    """A loaded dataset, its encoders and the fingerprint of everything the features depend on."""

    options: DataOptions
    splits: Any
    image_encoder: Any
    text_encoder: Any
    fingerprint: str
    identity: dict[str, Any]
    version: str = ""  # the data version: the fingerprint without the variant (split seed, fraction)

    def __post_init__(self) -> None:
        self.version = self.version or self.fingerprint


def load_splits(options: DataOptions) -> Any:
    """The :class:`~fusionzoo.data.base.DatasetSplits` of ``options`` (generated on first use for synth)."""
    from fusionzoo.datasets import load_dataset

    # the backend's options win over the defaults (a data option seed=3 or limit=500 is not a clash)
    merged = {"seed": options.seed, **options.data}
    if options.limit is not None:
        merged["limit"] = options.limit
    return load_dataset(options.dataset, data_dir=options.data_dir, **merged)


def encoders_for(options: DataOptions, splits: Any) -> tuple[Any, Any]:
    """The image and text encoders of ``options``: :func:`fusionzoo.encoders.defaults.build_encoders` (the
    one factory) with the specs named in ``options.encoders``, else the dataset's defaults."""
    from fusionzoo.encoders.defaults import build_encoders as build

    enc = options.encoders
    return build(
        options.dataset,
        splits,
        options.cache_root(),
        image_spec=enc.get("image"),
        text_spec=enc.get("text"),
        pretrained=enc.get("pretrained"),
        text_max_length=enc.get("text_max_length"),
        image_tokens=enc.get("image_tokens", "all"),
        text_tokens=enc.get("text_tokens", "all"),
    )


def check_split_sizes(splits: Any) -> None:
    """Raise :class:`PrepareError` for an empty or too-small split, naming it and the fix."""
    sizes = {s: len(splits.split(s)) for s in ("train", "val", "test")}
    problems = []
    if sizes["train"] < MIN_TRAIN_ROWS:
        problems.append(f"the train split has {sizes['train']} row(s) (at least {MIN_TRAIN_ROWS} needed)")
    elif splits.split("train")["label"].nunique() < 2:
        problems.append("the train split holds a single class (a classifier needs at least 2)")
    for split in ("val", "test"):
        if sizes[split] == 0:
            problems.append(f"the {split} split is empty")
    if problems:
        raise PrepareError(
            f"dataset '{splits.name}' ({sizes['train']} train / {sizes['val']} val / {sizes['test']} test "
            f"rows): {'; '.join(problems)}. Use more data (validation rows are carved per class from train "
            "with val_fraction, test rows come from the test file or test_fraction), or raise "
            "val_fraction / test_fraction, or remove --limit."
        )


def _fingerprint(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resolve_inputs(options: DataOptions) -> ResolvedInputs:
    """Load the dataset and build the encoders, without encoding; see the module docstring.

    With a variant (``split_seed``, ``train_fraction``; :mod:`fusionzoo.data.variants`) the encoders
    are built on the dataset as loaded (the same encoders for every variant) and ``version`` is the
    fingerprint of the dataset as loaded, which the variants share (same test split, same encoders)."""
    if options.mode not in ("frozen", "finetune"):
        raise PrepareError(f"mode must be frozen or finetune, got {options.mode!r}")
    try:
        from fusionzoo.data.variants import apply_variant

        base = load_splits(options)
        check_split_sizes(base)
        image_encoder, text_encoder = encoders_for(options, base)
        splits = apply_variant(base, options.split_seed, options.train_fraction)
        check_split_sizes(splits)
    except PrepareError:
        raise
    except (OSError, ValueError, RuntimeError) as exc:
        raise PrepareError(f"dataset '{options.dataset}': {exc}") from exc
    identity = _identity(options, splits, image_encoder, text_encoder)
    version = (
        _fingerprint(_identity(options, base, image_encoder, text_encoder)) if splits is not base else ""
    )
    return ResolvedInputs(
        options, splits, image_encoder, text_encoder, _fingerprint(identity), identity, version
    )


def _identity(options: DataOptions, splits: Any, image_encoder: Any, text_encoder: Any) -> dict[str, Any]:
    """What the data fingerprint covers (module docstring)."""
    if options.mode == "frozen":
        from fusionzoo.encoders.cache_format import entry_key

        keys = {
            split: entry_key(splits, split, image_encoder, text_encoder, options.on_bad_image())[0]
            for split in ("train", "val", "test")
        }
        return {"mode": "frozen", "cache_keys": keys, "classes": list(splits.classes)}
    from fusionzoo.encoders.live import finetune_identity

    return {
        "mode": "finetune",
        **finetune_identity(splits, image_encoder, text_encoder, options.freeze_layers),
    }


def materialise(inputs: ResolvedInputs, console: Any = None, progress: bool = True) -> TrainingData:
    """The training data of resolved inputs: cached features (frozen) or live encoders (finetune)."""
    options = inputs.options
    if options.mode == "finetune":
        from fusionzoo.encoders.live import LiveData

        return LiveData(
            inputs.splits,
            inputs.image_encoder,
            inputs.text_encoder,
            freeze_layers=options.freeze_layers,
            name=options.dataset,
            fingerprint=inputs.fingerprint,
        )
    features = encode_features(inputs, console=console, progress=progress)
    image_prefix, text_prefix = prefix_tokens(inputs.image_encoder, inputs.text_encoder)
    return FeatureData(
        features["train"],
        features["val"],
        features["test"],
        num_classes=inputs.splits.num_classes,
        classes=list(inputs.splits.classes),
        name=options.dataset,
        fingerprint=inputs.fingerprint,
        image_prefix_tokens=image_prefix,
        text_prefix_tokens=text_prefix,
    )


def encode_features(
    inputs: ResolvedInputs,
    split_names: tuple[str, ...] | list[str] = ("train", "val", "test"),
    *,
    verify: str = "auto",
    console: Any = None,
    progress: bool = True,
    encode_entry: Any = None,
) -> dict[str, Any]:
    """Encode (or reuse from the cache) the frozen-mode features of ``split_names``: the cache entries
    bench and tune read, with the same encoders, options and cache folder (``fusionzoo encode``;
    ``encode_entry``: see :func:`~fusionzoo.encoders.cache.encode_splits`, e.g. Ray shards)."""
    from fusionzoo.encoders.cache import encode_splits
    from fusionzoo.io import disk_errors

    options = inputs.options
    enc = options.encoders
    with disk_errors(options.cache_root(), "the feature cache"), _encoder_errors(options.dataset):
        return encode_splits(
            inputs.splits,
            inputs.image_encoder,
            inputs.text_encoder,
            options.cache_root(),
            split_names=list(split_names),
            batch_size=int(enc.get("batch_size", 64)),
            device=options.device,
            num_workers=enc.get("num_workers"),
            on_bad_image=options.on_bad_image(),
            verify=verify,
            progress=progress,
            console=console,
            encode_entry=encode_entry,
        )


@contextlib.contextmanager
def _encoder_errors(dataset: str) -> Iterator[None]:
    """An :class:`~fusionzoo.encoders.errors.EncoderError` while encoding (``--on-bad-image fail``
    naming unreadable files, a damaged cache entry) as a :class:`PrepareError`: one message, no
    traceback, in every command that prepares data."""
    from fusionzoo.encoders.errors import EncoderError

    try:
        yield
    except EncoderError as exc:
        raise PrepareError(f"dataset '{dataset}': {exc}") from exc


def prepare_data(options: DataOptions, console: Any = None, progress: bool = True) -> TrainingData:
    """:func:`resolve_inputs` then :func:`materialise`."""
    return materialise(resolve_inputs(options), console=console, progress=progress)


def cache_status(options: DataOptions) -> dict[str, Any]:
    """Whether the dataset and each split's features are already there (nothing is built).

    Returns ``{"dataset": "ready ..."|"not generated yet ..."|"unavailable: ...", "features": {split:
    "cached"|"missing ..."}, "shapes": {...} | None, "fingerprint": str | None}``; ``shapes`` (rows and
    token shapes, from the cache) feed the cost estimate.
    """
    from fusionzoo.registry import REGISTRIES

    status: dict[str, Any] = {
        "dataset": "?",
        "features": {},
        "shapes": None,
        "fingerprint": None,
        "cache_dir": str(options.cache_root()),
    }
    try:
        backend = REGISTRIES["dataset"].create(options.dataset)
        line = backend.status(data_dir=options.data_dir, **options.data)
        if not line.startswith("ready"):
            status["dataset"] = line
            status["features"] = dict.fromkeys(("train", "val", "test"), "missing")
            return status
        inputs = resolve_inputs(options)
        splits = inputs.splits
        status["fingerprint"] = inputs.fingerprint
        status["version"] = inputs.version
        status["dataset"] = (
            f"ready ({len(splits.train):,} train / {len(splits.val):,} val / {len(splits.test):,} test rows)"
        )
        if options.mode == "finetune":
            status["features"] = dict.fromkeys(("train", "val", "test"), "encoded live (finetune)")
            return status
        from fusionzoo.encoders.cache_format import open_entry

        shapes: dict[str, int] = {"num_classes": splits.num_classes}
        for split, key in inputs.identity["cache_keys"].items():
            folder = options.cache_root() / f"{splits.name}-{split}-{key}"
            if (folder / "manifest.json").exists():
                status["features"][split] = "cached"
                features = open_entry(folder, "size", None)
                shapes[f"n_{split}"] = len(features)
                if split == "train":
                    lengths = features.text_lengths()
                    shapes.update(
                        image_tokens=features.num_image_tokens,
                        image_dim=features.image_dim,
                        text_dim=features.text_dim,
                        text_tokens=max(1, int(lengths.mean())) if len(lengths) else 1,
                    )
            else:
                status["features"][split] = "missing (will be encoded)"
        if all(v == "cached" for v in status["features"].values()):
            status["shapes"] = shapes
    except Exception as exc:  # a dry run reports, it does not fail on a missing dataset
        status["dataset"] = f"unavailable: {type(exc).__name__}: {exc}".splitlines()[0]
    return status
