"""Linear probes on the embedded synthetic dataset: image-only, text-only and both.

Features are deliberately simple (no neural encoder): image = 8×8 RGB pixels + a 4×4×4 RGB colour
histogram (standardised); text = binary bag of words (CountVectorizer); both = the two concatenated,
the image block down-weighted. A multinomial LogisticRegression is trained on the train split (noisy
labels included); its C (and the image weight for "both") is chosen on the validation split from a
small grid, and the chosen model is scored on the test split. Both modalities are needed when the
"both" accuracy is far above the best unimodal one.

    OMP_NUM_THREADS=1 python benchmarks/perf/synth_probe.py [--size 6000] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings

import numpy as np
from PIL import Image
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from fusionzoo.data.synth_files import SynthConfig, ensure_synth
from fusionzoo.datasets import load_dataset


def image_features(paths: list[str]) -> np.ndarray:
    rows = []
    for path in paths:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB").resize((8, 8), Image.BILINEAR), dtype=np.float32) / 255.0
        bins = np.minimum((rgb * 4).astype(int), 3)
        hist = np.bincount((bins[..., 0] * 16 + bins[..., 1] * 4 + bins[..., 2]).ravel(), minlength=64) / 64.0
        rows.append(np.concatenate([rgb.ravel(), hist]))
    return np.stack(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", type=int, default=SynthConfig.size)
    parser.add_argument("--image-size", type=int, default=SynthConfig.image_size)
    parser.add_argument("--seed", type=int, default=0, help="generation seed of the synthetic dataset")
    parser.add_argument("--data-dir", default=None, help="default: a temporary folder (fresh generation)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="fusionzoo-probe-")
    try:
        run(args, data_dir)
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)


def run(args: argparse.Namespace, data_dir: str) -> None:
    config = SynthConfig(size=args.size, image_size=args.image_size, seed=args.seed)
    started = time.perf_counter()
    ensure_synth(config, data_dir=data_dir)
    generated = time.perf_counter() - started
    data = load_dataset(
        "synth", data_dir=data_dir, size=args.size, image_size=args.image_size, synth_seed=args.seed
    )
    splits = {"train": data.train, "val": data.val, "test": data.test}
    print(
        f"generation {generated:.1f}s  train {len(data.train)}  val {len(data.val)}  test {len(data.test)}  "
        f"classes {data.num_classes}"
    )

    image = {k: image_features(v["image_path"].tolist()) for k, v in splits.items()}
    scaler = StandardScaler().fit(image["train"])
    image = {k: sparse.csr_matrix(scaler.transform(v)) for k, v in image.items()}
    vectorizer = CountVectorizer(token_pattern=r"(?u)\b\w+\b", binary=True).fit(data.train["text"])
    text = {k: vectorizer.transform(v["text"]) for k, v in splits.items()}
    labels = {k: v["label"].to_numpy() for k, v in splits.items()}

    def probe(features, grid: list[tuple[float, float]]) -> tuple[float, str]:
        """Fit on train for each (image weight, C); pick by val accuracy; return its test accuracy."""
        best_val, best_test, chosen = -1.0, 0.0, ""
        for weight, c in grid:
            x = {k: features(k, weight) for k in splits}
            model = LogisticRegression(max_iter=3000, C=c).fit(x["train"], labels["train"])
            val = float((model.predict(x["val"]) == labels["val"]).mean())
            if val > best_val:
                best_val = val
                best_test = float((model.predict(x["test"]) == labels["test"]).mean())
                chosen = f"C={c}" + (f", image weight={weight}" if weight else "") + f", val {val:.3f}"
        return best_test, chosen

    results = {
        "image-only": probe(lambda k, w: image[k], [(0, c) for c in (0.01, 0.05, 0.3)]),
        "text-only": probe(lambda k, w: text[k], [(0, c) for c in (0.3, 1.0, 3.0)]),
        "both": probe(
            lambda k, w: sparse.hstack([image[k] * w, text[k]]).tocsr(),
            [(w, c) for w in (0.1, 0.2, 0.4) for c in (0.3, 1.0)],
        ),
    }
    majority = float((data.test["label"] == data.train["label"].mode()[0]).mean())
    print(f"majority class {majority:.3f}")
    for name, (accuracy, chosen) in results.items():
        print(f"{name:<11} test accuracy {accuracy:.3f}  ({chosen})")
    margin = results["both"][0] - max(results["image-only"][0], results["text-only"][0])
    print(f"both − best unimodal = {100 * margin:+.1f} points")


if __name__ == "__main__":
    main()
