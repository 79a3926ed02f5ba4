"""Linear probes on cached features: how much each modality, and both together, can tell.

Mean-pooled image tokens, mean-pooled text tokens and their concatenation, each standardised, go
into a logistic regression trained on one split and scored on another. A multimodal probe far above
the best unimodal one means the features carry complementary information, so fusion modules can be
told apart on them (used to choose the offline default encoders; see docs/encoders.md).
"""

from __future__ import annotations

import numpy as np

from fusionzoo.encoders.features import FeatureSplit


def pooled(features: FeatureSplit, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """``(image_mean (N, Ei), text_mean (N, Et))`` as float32: each distinct image and text is pooled
    once (read chunk by chunk), then gathered per row."""
    images = np.zeros((features.num_images, features.image_dim), np.float32)
    for start in range(0, features.num_images, chunk):
        block = np.asarray(features.image_tokens[start : start + chunk], np.float32)
        images[start : start + chunk] = block.mean(1)
    lengths = features.distinct_text_lengths()
    offsets = np.asarray(features.text_offsets)
    texts = np.zeros((features.num_texts, features.text_dim), np.float32)
    for start in range(0, features.num_texts, chunk):
        stop = min(features.num_texts, start + chunk)
        block = np.asarray(features.text_tokens[int(offsets[start]) : int(offsets[stop])], np.float32)
        np.add.at(texts, np.repeat(np.arange(start, stop), lengths[start:stop]), block)
    texts /= np.maximum(lengths, 1)[:, None]
    return images[features.image_index], texts[features.text_index]


def linear_probe(
    train: FeatureSplit, test: FeatureSplit, max_iter: int = 300, c: float = 0.1
) -> dict[str, float]:
    """Test accuracy of a logistic regression on image-only, text-only and concatenated pooled features.

    Runs BLAS single-threaded: on a small shared machine multi-threaded L-BFGS was ~40× slower.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _linear_probe(train, test, max_iter, c)


def _linear_probe(train: FeatureSplit, test: FeatureSplit, max_iter: int, c: float) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train_image, train_text = pooled(train)
    test_image, test_text = pooled(test)
    views = {
        "image": (train_image, test_image),
        "text": (train_text, test_text),
        "concat": (np.hstack([train_image, train_text]), np.hstack([test_image, test_text])),
    }
    labels_train = np.asarray(train.labels)
    labels_test = np.asarray(test.labels)
    scores = {}
    for name, (x_train, x_test) in views.items():
        scaler = StandardScaler().fit(x_train)
        model = LogisticRegression(max_iter=max_iter, C=c)
        model.fit(scaler.transform(x_train), labels_train)
        scores[name] = float((model.predict(scaler.transform(x_test)) == labels_test).mean())
    scores["gain"] = scores["concat"] - max(scores["image"], scores["text"])
    return scores
