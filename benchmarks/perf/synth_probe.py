"""Linear probes on the embedded synthetic dataset: image-only, text-only and both.

Features are deliberately simple (no neural encoder): image = 16×16 RGB pixels + a 4×4×4 RGB colour
histogram; text = bag of words (CountVectorizer). A multinomial LogisticRegression is trained on the
train split (noisy labels included) and scored on the test split. Both modalities are needed when the
"both" accuracy is far above the best unimodal one.

    OMP_NUM_THREADS=1 python benchmarks/perf/synth_probe.py [--size 6000] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from PIL import Image
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from fusionzoo.data import load_dataset
from fusionzoo.data.synth import SynthConfig, ensure_synth


def image_features(paths: list[str]) -> np.ndarray:
    rows = []
    for path in paths:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB").resize((16, 16), Image.BILINEAR), dtype=np.float32) / 255.0
        bins = np.minimum((rgb * 4).astype(int), 3)
        hist = (
            np.bincount((bins[..., 0] * 16 + bins[..., 1] * 4 + bins[..., 2]).ravel(), minlength=64) / 256.0
        )
        rows.append(np.concatenate([rgb.ravel(), hist]))
    return np.stack(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=SynthConfig.size)
    parser.add_argument("--image-size", type=int, default=SynthConfig.image_size)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="default: a temporary folder (fresh generation)")
    args = parser.parse_args()

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="fusionzoo-probe-")
    config = SynthConfig(size=args.size, image_size=args.image_size, seed=args.seed)
    started = time.perf_counter()
    ensure_synth(config, data_dir=data_dir)
    generated = time.perf_counter() - started
    data = load_dataset(
        "synth", data_dir=data_dir, size=args.size, image_size=args.image_size, synth_seed=args.seed
    )
    train = data.train
    test = data.test
    print(
        f"generation {generated:.1f}s  train {len(train)}  val {len(data.val)}  test {len(test)}  classes {data.num_classes}"
    )

    image_train, image_test = (
        image_features(train["image_path"].tolist()),
        image_features(test["image_path"].tolist()),
    )
    scaler = StandardScaler().fit(image_train)
    image_train, image_test = scaler.transform(image_train), scaler.transform(image_test)
    vectorizer = CountVectorizer(token_pattern=r"(?u)\b\w+\b", binary=True)
    text_train = vectorizer.fit_transform(train["text"])
    text_test = vectorizer.transform(test["text"])

    def probe(x_train, x_test, c: float) -> float:
        model = LogisticRegression(max_iter=3000, C=c)
        model.fit(x_train, train["label"].to_numpy())
        return float((model.predict(x_test) == test["label"].to_numpy()).mean())

    results = {
        "image-only": probe(image_train, image_test, 0.05),
        "text-only": probe(text_train, text_test, 1.0),
        "both": probe(
            sparse.hstack([sparse.csr_matrix(image_train) * 0.5, text_train]).tocsr(),
            sparse.hstack([sparse.csr_matrix(image_test) * 0.5, text_test]).tocsr(),
            0.3,
        ),
    }
    majority = float((test["label"] == train["label"].mode()[0]).mean())
    print(f"majority class {majority:.3f}")
    for name, accuracy in results.items():
        print(f"{name:<11} accuracy {accuracy:.3f}")
    margin = results["both"] - max(results["image-only"], results["text-only"])
    print(f"both − best unimodal = {100 * margin:+.1f} points")


if __name__ == "__main__":
    main()
