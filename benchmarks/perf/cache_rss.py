"""Peak RSS while training over the feature cache, for N and 10·N samples (target ratio ≤ 1.3).

    python benchmarks/perf/cache_rss.py [--epochs 1] [--fusion concat_mlp]

N = the synth train split encoded with the default encoders (a real cache entry). 10·N = a cache
entry made of that entry's bytes repeated 10 times (written in the cache format, with a manifest, and
opened through the same ``open_entry``), so no extra encoding is needed. Each size is trained on in
its own subprocess (one ``FusionModel`` epoch over a shuffled ``DataLoader``); the child reports
``ru_maxrss``. The run is repeated reading batches through the memory map instead of ``pread`` (what
``collate_features`` does for cache entries) to show why the cache reads explicitly.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(entry: str, fusion: str, epochs: int, pread: bool) -> None:
    import torch

    from fusionzoo.encoders.cache_format import open_entry
    from fusionzoo.encoders.features import FeatureDataset
    from fusionzoo.train.model import FusionModel

    torch.manual_seed(0)
    train = open_entry(Path(entry), verify="size")
    if not pread:
        train.sources = None  # index the np.memmap arrays directly
    model = FusionModel(
        fusion,
        "linear",
        image_dim=train.image_dim,
        text_dim=train.text_dim,
        dim=64,
        num_classes=int(train.labels.max()) + 1,
        num_image_tokens=train.num_image_tokens,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    dataset = FeatureDataset(train)
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True, collate_fn=dataset.collate)
    baseline = rss_mb()
    started = time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            out = model(batch["image"], batch["text"], batch["image_mask"], batch["text_mask"])
            loss = torch.nn.functional.cross_entropy(out.logits, batch["label"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": len(train), "baseline_mb": baseline, "peak_mb": rss_mb(), "seconds": seconds}))


def tile_entry(source: Path, target: Path, times: int) -> None:
    """Write ``source`` repeated ``times`` times as a new cache entry (same format, valid manifest): every
    copy gets its own distinct images and texts, so the stored bytes grow ``times``-fold."""
    import hashlib

    import numpy as np
    import pandas as pd

    from fusionzoo.encoders.cache_format import FILES, file_records

    manifest = json.loads((source / "manifest.json").read_text())
    target.mkdir(parents=True)
    blobs = {name: (source / name).read_bytes() for name in FILES}
    shas = {name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()}
    for name, blob in blobs.items():
        with open(target / name, "wb") as handle:
            for _ in range(times):
                handle.write(blob)
    n, n_images, n_texts = manifest["n"], manifest["n_images"], manifest["n_texts"]
    for name, step in (("rows.i64", n), ("image_index.i64", n_images), ("text_index.i64", n_texts)):
        index = np.fromfile(source / name, dtype=np.int64)
        np.concatenate([index + k * step for k in range(times)]).tofile(target / name)
    np.save(target / "labels.npy", np.tile(np.load(source / "labels.npy"), times))
    meta = pd.read_parquet(source / "meta.parquet")
    pd.concat([meta] * times, ignore_index=True).to_parquet(target / "meta.parquet", index=False)
    chunks = []
    for k in range(times):
        for phase, names in (
            ("image", ("image_tokens.f16",)),
            ("text", ("text_tokens.f16", "text_lengths.i64")),
        ):
            files = {name: [k * len(blobs[name]), len(blobs[name]), shas[name]] for name in names}
            chunks.append({"index": len(chunks), "phase": phase, "files": files})
    tiled = dict(manifest, n=n * times, n_images=n_images * times, n_texts=n_texts * times, chunks=chunks)
    tiled["text_total"] = manifest["text_total"] * times
    tiled["bytes"] = {name: (target / name).stat().st_size for name in FILES}
    tiled["files"] = file_records(target)
    (target / "manifest.json").write_text(json.dumps(tiled))


def run_child(entry: Path, fusion: str, epochs: int, pread: bool) -> dict:
    command = [sys.executable, __file__, "--child", str(entry), "--fusion", fusion, "--epochs", str(epochs)]
    if not pread:
        command.append("--mmap")
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--fusion", default="concat_mlp")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--times", type=int, default=10)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mmap", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.fusion, args.epochs, not args.mmap)
        return

    from rich.console import Console

    from fusionzoo.datasets import load_dataset
    from fusionzoo.encoders.cache import default_cache_dir, encode_splits
    from fusionzoo.encoders.defaults import default_encoders
    from fusionzoo.io import human_bytes

    splits = load_dataset("synth", data_dir=args.data_dir)
    cache = args.cache_dir or default_cache_dir(args.data_dir)
    image, text = default_encoders("synth", splits, cache)
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - lives for the script
    train = encode_splits(splits, image, text, cache, split_names=["train"], progress=False, console=quiet)[
        "train"
    ]
    entry = Path(train.info["cache_path"])
    with tempfile.TemporaryDirectory(prefix="fz-rss-") as tmp:
        big = Path(tmp) / f"tiled-{train.info['key']}"  # open_entry checks the name against the key
        tile_entry(entry, big, args.times)
        size = sum(f.stat().st_size for f in big.iterdir())
        print(
            f"N = {len(train)} rows ({human_bytes(train.info['bytes'])}); {args.times}·N = {human_bytes(size)}"
        )
        for pread in (True, False):
            small = run_child(entry, args.fusion, args.epochs, pread)
            large = run_child(big, args.fusion, args.epochs, pread)
            label = "pread batches (default)" if pread else "through the memmap     "
            print(
                f"{label}: peak RSS N {small['peak_mb']:.0f} MB, {args.times}·N {large['peak_mb']:.0f} MB "
                f"(growth over the pre-epoch peak {small['peak_mb'] - small['baseline_mb']:.0f}/"
                f"{large['peak_mb'] - large['baseline_mb']:.0f} MB; epochs {small['seconds']:.1f}/"
                f"{large['seconds']:.1f} s) → ratio {large['peak_mb'] / small['peak_mb']:.2f}"
                + ("  (target <= 1.3)" if pread else "")
            )


if __name__ == "__main__":
    main()
