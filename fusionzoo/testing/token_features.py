"""Synthetic token features with a controllable amount of signal per modality (tests, perf scripts).

Each class ``c`` has an image prototype ``p_c`` and a text prototype ``q_c``. A sample of class ``c``
gets image tokens ``p_c + σ_i·ε`` and text tokens ``q_c + σ_t·ε``; with ``complementary=True`` each
modality alone only tells a *pair* of classes apart (the image fixes ``c // 2``, the text ``c % 2``),
so only a fusion of both reaches full accuracy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusionzoo.encoders.features import FeatureSplit
from fusionzoo.train.inputs import FeatureData

__all__ = ["synthetic_features", "synthetic_split"]


def synthetic_split(
    n: int,
    *,
    num_classes: int = 6,
    image_tokens: int = 4,
    image_dim: int = 16,
    text_dim: int = 12,
    max_text: int = 6,
    noise: float = 1.5,
    complementary: bool = False,
    seed: int = 0,
    prototype_seed: int = 1234,
    geos: tuple[str, ...] = ("cz", "sk"),
) -> FeatureSplit:
    """One split of ``n`` samples (fp16 tokens, ragged text, meta with geo/is_human)."""
    rng = np.random.default_rng(seed)
    proto_rng = np.random.default_rng(prototype_seed)
    labels = rng.integers(0, num_classes, n).astype(np.int64)
    if complementary:
        image_key, text_key = labels // 2, labels % 2
        image_protos = proto_rng.normal(size=((num_classes + 1) // 2, image_dim))
        text_protos = proto_rng.normal(size=(2, text_dim))
    else:
        image_key, text_key = labels, labels
        image_protos = proto_rng.normal(size=(num_classes, image_dim))
        text_protos = proto_rng.normal(size=(num_classes, text_dim))
    image = image_protos[image_key][:, None, :] + rng.normal(size=(n, image_tokens, image_dim)) * noise
    lengths = rng.integers(1, max_text + 1, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    text = (
        np.repeat(text_protos[text_key], lengths, axis=0) + rng.normal(size=(offsets[-1], text_dim)) * noise
    )
    meta = pd.DataFrame(
        {
            "item_id": [f"s{seed}-{i}" for i in range(n)],
            "geo": rng.choice(list(geos), n),
            "label_source": "admin",
            "is_human": rng.random(n) < 0.6,
            "label": labels,
        }
    )
    return FeatureSplit(image.astype(np.float16), text.astype(np.float16), offsets, labels, meta)


def synthetic_features(
    n_train: int = 256, n_val: int = 96, n_test: int = 96, *, seed: int = 0, **options: object
) -> FeatureData:
    """Three :func:`synthetic_split` s (different sample seeds, shared class prototypes)."""
    splits = [
        synthetic_split(n, seed=seed * 3 + i, **options) for i, n in enumerate((n_train, n_val, n_test))
    ]
    num_classes = int(options.get("num_classes", 6))
    return FeatureData(
        *splits, num_classes=num_classes, name="synthetic-features", fingerprint=f"synth{seed}"
    )
