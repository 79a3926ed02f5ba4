"""Dataset + encoder options + mode → the data object ``train_run`` consumes.

- **frozen** (default): load the dataset (``fusionzoo.data.load_dataset``; the embedded ``synth`` one is
  generated on first use and reused afterwards), build the encoders (the dataset's defaults unless
  named), and get token features from the cache (``fusionzoo.encoders.cache.encode_splits``: encoded
  once, then memory-mapped). Every fusion and seed trains on these identical tokens.
- **finetune**: the encoders run inside the training graph on every batch (``LiveEncoders``), with
  their own learning rate (``RunConfig.backbone_lr``) and the first ``freeze_layers`` blocks frozen.

:func:`cache_status` tells ``--dry-run`` whether the dataset and its features exist, without
generating or encoding anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusionzoo.train.data import FeatureData, TrainingData

__all__ = ["DataOptions", "PrepareError", "cache_status", "prepare_data"]


class PrepareError(RuntimeError):
    """The dataset or its features cannot be prepared; the message says why and what to do."""


@dataclass
class DataOptions:
    """How to get one dataset's training data."""

    dataset: str = "synth"
    data_dir: str | None = None
    limit: int | None = None
    mode: str = "frozen"
    seed: int = 0  # of the validation carve-out and subsampling: fixed across the grid's seeds
    data: dict[str, Any] = field(default_factory=dict)  # extra load_dataset options
    encoders: dict[str, Any] = field(default_factory=dict)  # image, text, batch_size, text_max_length, ...
    cache_dir: str | None = None
    device: str = "cpu"
    freeze_layers: int = 0

    def cache_root(self) -> Path:
        from fusionzoo.encoders.cache import default_cache_dir

        return Path(self.cache_dir) if self.cache_dir else default_cache_dir(self.data_dir)


def load_splits(options: DataOptions) -> Any:
    """The :class:`~fusionzoo.data.base.DatasetSplits` of ``options`` (generated on first use for synth)."""
    from fusionzoo.data import load_dataset

    return load_dataset(
        options.dataset, data_dir=options.data_dir, limit=options.limit, seed=options.seed, **options.data
    )


def build_encoders(options: DataOptions, splits: Any) -> tuple[Any, Any]:
    """The image and text encoders: named in ``options.encoders`` or the dataset's defaults."""
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


def prepare_data(options: DataOptions, console: Any = None, progress: bool = True) -> TrainingData:
    """Training data for ``options`` (see the module docstring)."""
    if options.mode not in ("frozen", "finetune"):
        raise PrepareError(f"mode must be frozen or finetune, got {options.mode!r}")
    try:
        splits = load_splits(options)
        image_encoder, text_encoder = build_encoders(options, splits)
    except (OSError, ValueError, RuntimeError) as exc:
        raise PrepareError(f"dataset '{options.dataset}': {exc}") from exc
    if options.mode == "finetune":
        return _live_data(options, splits, image_encoder, text_encoder)
    from fusionzoo.encoders.cache import encode_splits

    enc = options.encoders
    features = encode_splits(
        splits,
        image_encoder,
        text_encoder,
        options.cache_root(),
        batch_size=int(enc.get("batch_size", 64)),
        device=options.device,
        num_workers=enc.get("num_workers"),
        progress=progress,
        console=console,
    )
    identity = "|".join(
        [splits.fingerprint, str(getattr(image_encoder, "spec", "")), str(getattr(text_encoder, "spec", ""))]
    )
    import hashlib

    return FeatureData(
        features["train"],
        features["val"],
        features["test"],
        num_classes=splits.num_classes,
        classes=list(splits.classes),
        name=options.dataset,
        fingerprint=hashlib.sha256(identity.encode()).hexdigest()[:16],
    )


def _live_data(options: DataOptions, splits: Any, image_encoder: Any, text_encoder: Any) -> TrainingData:
    try:
        from fusionzoo.encoders.live import LiveData
    except ImportError as exc:  # pragma: no cover - depends on the encoders package
        raise PrepareError(f"finetune mode needs fusionzoo.encoders.live ({exc})") from exc
    return LiveData(
        splits, image_encoder, text_encoder, freeze_layers=options.freeze_layers, name=options.dataset
    )


def cache_status(options: DataOptions) -> dict[str, Any]:
    """Whether the dataset and each split's features are already there (nothing is built).

    Returns ``{"dataset": "ready"|"missing (...)", "features": {split: "cached"|"missing"|"?"},
    "shapes": {...} | None}`` where ``shapes`` (rows and token shapes, from the cache) feed the cost
    estimate.
    """
    status: dict[str, Any] = {
        "dataset": "?",
        "features": {},
        "shapes": None,
        "cache_dir": str(options.cache_root()),
    }
    try:
        if options.dataset == "synth":
            from fusionzoo.data.synth import SynthConfig, default_out, is_current

            synth_options = {k: v for k, v in options.data.items() if k in SynthConfig.__dataclass_fields__}
            out = default_out(SynthConfig.from_options(**synth_options), options.data_dir)
            if not is_current(out, SynthConfig.from_options(**synth_options)):
                status["dataset"] = f"not generated yet (will be generated into {out})"
                status["features"] = dict.fromkeys(("train", "val", "test"), "missing")
                return status
        splits = load_splits(options)
        status["dataset"] = (
            f"ready ({len(splits.train):,} train / {len(splits.val):,} val / {len(splits.test):,} test rows)"
        )
        image_encoder, text_encoder = build_encoders(options, splits)
        from fusionzoo.encoders.cache import entry_key, open_entry

        shapes: dict[str, int] = {"num_classes": splits.num_classes}
        for split in ("train", "val", "test"):
            key, _ = entry_key(splits, split, image_encoder, text_encoder, "skip")
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
