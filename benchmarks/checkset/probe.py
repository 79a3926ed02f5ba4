"""Linear-probe baseline on the check set's cached features (image, text, both).

    HF_HUB_OFFLINE=1 python benchmarks/checkset/probe.py --data-dir /work/data/checkset \\
        --image-encoder timm:tf_efficientnet_lite0@/work/data/encoders/efficientnet_lite0.safetensors \\
        --text-encoder hf:/work/data/encoders/all-MiniLM-L6-v2 [--json out.json]

Features are fusionzoo's cache entries (``encode_splits`` reuses what ``fusionzoo encode`` wrote; nothing
is re-encoded when they exist), mean-pooled per modality with ``fusionzoo.encoders.probe.pooled`` and
standardised on the fitting rows. A multinomial LogisticRegression is fitted for each C of a grid; **C is
chosen on a validation split, never on test**, in two ways:

- ``fusionzoo-val``: fusionzoo's own validation split (a stratified 10 % of the train *items*); in a
  set where ~5 items share each image, nearly every val image also occurs in train, so this
  validation rewards memorising images;
- ``family-val``: a validation fold of train+val that shares no icon family (``baseIconId``, from
  ``checkset-images.csv``; the image itself when the sidecar is absent) with the rest
  (``StratifiedGroupKFold``, 5 folds, first fold).

The chosen C is then refitted on train+val and scored once on test: accuracy, macro-F1, and a 95 %
interval for the accuracy from a bootstrap over test *images* (items sharing an image are not
independent: the test set has ~250 images for ~1,250 items).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_GRID = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
VIEWS = ("image", "text", "concat")


def family_groups(image_paths: list[str], sidecar: Path | None) -> np.ndarray:
    """Group id per row: the icon family from ``checkset-images.csv`` when present, else the image."""
    import pandas as pd

    image_ids = [Path(p).stem for p in image_paths]
    if sidecar is not None and sidecar.is_file():
        table = pd.read_csv(sidecar, dtype=str)
        family = dict(zip(table["image_id"], table["family"], strict=True))
        image_ids = [family.get(i, i) for i in image_ids]
    _, groups = np.unique(np.asarray(image_ids, dtype=object), return_inverse=True)
    return groups


def image_bootstrap(correct: np.ndarray, images: np.ndarray, reps: int = 1000, seed: int = 0) -> list[float]:
    """95 % interval of the accuracy, resampling test images (with all their items) with replacement."""
    _, image_index = np.unique(images, return_inverse=True)
    hits = np.bincount(image_index, weights=correct.astype(float))
    counts = np.bincount(image_index)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(counts), size=(reps, len(counts)))
    accuracy = hits[draws].sum(1) / counts[draws].sum(1)
    return [float(np.quantile(accuracy, 0.025)), float(np.quantile(accuracy, 0.975))]


def fit_score(
    x_fit: np.ndarray, y_fit: np.ndarray, x_eval: np.ndarray, c: float, max_iter: int
) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_fit)
    model = LogisticRegression(C=c, max_iter=max_iter).fit(scaler.transform(x_fit), y_fit)
    return model.predict(scaler.transform(x_eval))


def choose_c(
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    grid: list[float],
    max_iter: int,
) -> tuple[float, float, dict[str, float]]:
    """``(best C, its val accuracy, val accuracy per C)``; ties go to the stronger regularisation."""
    scores = {}
    for c in grid:
        scores[str(c)] = float((fit_score(x_fit, y_fit, x_val, c, max_iter) == y_val).mean())
    best = max(grid, key=lambda c: (scores[str(c)], -c))
    return best, scores[str(best)], scores


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedGroupKFold
    from threadpoolctl import threadpool_limits

    from fusionzoo.datasets import load_dataset
    from fusionzoo.encoders.cache import default_cache_dir, encode_splits
    from fusionzoo.encoders.defaults import build_encoders
    from fusionzoo.encoders.probe import pooled

    started = time.perf_counter()
    splits = load_dataset("glami1m", data_dir=args.data_dir)
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir(args.data_dir)
    image_encoder, text_encoder = build_encoders(
        "glami1m", splits, cache, image_spec=args.image_encoder, text_spec=args.text_encoder
    )
    features = encode_splits(splits, image_encoder, text_encoder, cache, progress=False)
    frames = {"train": splits.train, "val": splits.val, "test": splits.test}
    for name, frame in frames.items():
        if len(frame) != len(features[name]):
            raise SystemExit(f"{name}: {len(frame)} rows in the dataset but {len(features[name])} cached")
    pools = {name: pooled(features[name]) for name in frames}
    x = {
        name: {"image": img, "text": txt, "concat": np.hstack([img, txt])}
        for name, (img, txt) in pools.items()
    }
    y = {name: np.asarray(features[name].labels) for name in frames}
    sidecar = Path(splits.root).parent / "checkset-images.csv"
    grid = [float(v) for v in args.grid.split(",")]

    fit_rows = {v: np.vstack([x["train"][v], x["val"][v]]) for v in VIEWS}
    fit_labels = np.concatenate([y["train"], y["val"]])
    fit_paths = list(frames["train"]["image_path"]) + list(frames["val"]["image_path"])
    groups = family_groups(fit_paths, sidecar)
    folds = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=args.seed)
    rest, held = next(folds.split(fit_rows["image"], fit_labels, groups))
    shared = len(set(frames["val"]["image_path"]) & set(frames["train"]["image_path"])) / max(
        1, frames["val"]["image_path"].nunique()
    )

    test_images = frames["test"]["image_path"].to_numpy()
    report: dict[str, Any] = {
        "rows": {name: len(frame) for name, frame in frames.items()},
        "classes": splits.num_classes,
        "fusionzoo_val_images_also_in_train": round(shared, 4),
        "family_val": {
            "rows": int(len(held)),
            "groups": "icon family (checkset-images.csv)" if sidecar.is_file() else "image",
            "shared_groups_with_rest": int(len(set(groups[held]) & set(groups[rest]))),
        },
        "grid": grid,
        "majority_test_accuracy": float((y["test"] == np.bincount(y["train"]).argmax()).mean()),
        "probes": {},
    }
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for view in VIEWS:
            for scheme in ("fusionzoo-val", "family-val"):
                if scheme == "fusionzoo-val":
                    c, val_acc, per_c = choose_c(
                        x["train"][view], y["train"], x["val"][view], y["val"], grid, args.max_iter
                    )
                else:
                    c, val_acc, per_c = choose_c(
                        fit_rows[view][rest],
                        fit_labels[rest],
                        fit_rows[view][held],
                        fit_labels[held],
                        grid,
                        args.max_iter,
                    )
                predicted = fit_score(fit_rows[view], fit_labels, x["test"][view], c, args.max_iter)
                correct = predicted == y["test"]
                entry = {
                    "C": c,
                    "val_accuracy": round(val_acc, 4),
                    "val_accuracy_per_C": per_c,
                    "test_accuracy": round(float(correct.mean()), 4),
                    "test_accuracy_ci95_by_image": [
                        round(v, 4) for v in image_bootstrap(correct, test_images)
                    ],
                    "test_macro_f1": round(
                        float(f1_score(y["test"], predicted, average="macro", labels=np.unique(y["test"]))), 4
                    ),
                }
                report["probes"][f"{view}/{scheme}"] = entry
                print(
                    f"{view:<7} {scheme:<14} C={c:<7g} val {entry['val_accuracy']:.3f}  test acc "
                    f"{entry['test_accuracy']:.3f} [{entry['test_accuracy_ci95_by_image'][0]:.3f}, "
                    f"{entry['test_accuracy_ci95_by_image'][1]:.3f}]  macro-F1 {entry['test_macro_f1']:.3f}",
                    flush=True,
                )
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True, help="data dir holding glami1m/GLAMI-1M-dataset")
    parser.add_argument("--cache-dir", default=None, help="feature cache [default: <data dir>/features]")
    parser.add_argument("--image-encoder", required=True)
    parser.add_argument("--text-encoder", required=True)
    parser.add_argument("--grid", default=",".join(str(c) for c in DEFAULT_GRID), help="C values")
    parser.add_argument("--max-iter", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="of the family-held-out validation fold")
    parser.add_argument("--json", default=None, help="write the full report here")
    args = parser.parse_args()
    report = run(args)
    print(
        f"majority class {report['majority_test_accuracy']:.3f}; fusionzoo val images also in train: "
        f"{100 * report['fusionzoo_val_images_also_in_train']:.1f} %; {report['seconds']:.0f} s"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
