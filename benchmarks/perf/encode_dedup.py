"""Encode time and cache size with shared images (each distinct image encoded once) ÷ without.

    python benchmarks/perf/encode_dedup.py --data-dir DIR --image-encoder SPEC --text-encoder SPEC \
        [--dataset glami1m] [--images 100] [--threads 1]

Both arms encode the same train rows (every train row of the first ``--images`` distinct images) into fresh caches with
``encode_splits``, in one process, one after the other. The *unshared* arm gives every row its own copy
of its image file (same bytes, another path, written before timing; an untimed warm-up encode comes first), which is what the cache did before it stored distinct
inputs (every row encoded and stored, format 1); the *shared* arm is the dataset as it is. Texts are
identical in both arms, so the difference is the image work. Prints rows, distinct images, seconds,
bytes and the two ratios (shared ÷ unshared; below 1 is the saving).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="glami1m")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--image-encoder", required=True)
    parser.add_argument("--text-encoder", required=True)
    parser.add_argument(
        "--images", type=int, default=100, help="distinct train images whose rows are encoded"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    from rich.console import Console

    from fusionzoo.encoders.cache import encode_splits
    from fusionzoo.prepare import DataOptions, resolve_inputs

    torch.set_num_threads(args.threads)
    options = DataOptions(
        dataset=args.dataset,
        data_dir=args.data_dir,
        encoders={"image": args.image_encoder, "text": args.text_encoder},
    )
    inputs = resolve_inputs(options)
    splits = inputs.splits
    keep = splits.train["image_path"].drop_duplicates().iloc[: args.images]
    splits.train = splits.train[splits.train["image_path"].isin(set(keep))].reset_index(drop=True)
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - lives for the script
    results = {}
    with tempfile.TemporaryDirectory(prefix="fz-dedup-perf-") as tmp:
        copies = Path(tmp) / "copies"
        copies.mkdir()
        shared = splits.train.copy()
        unshared = shared.copy()
        paths = []
        for i, path in enumerate(shared["image_path"]):
            target = copies / f"{i:06d}{Path(path).suffix}"
            shutil.copy2(path, target)
            paths.append(str(target))
        unshared["image_path"] = paths
        warm = shared.iloc[:16]  # warm-up (thread pools, page cache, first-call allocations), untimed
        for arm, frame in (("warm-up", warm), ("unshared", unshared), ("shared", shared)):
            splits.train = frame
            cache = Path(tmp) / f"cache-{arm}"
            started = time.perf_counter()
            encode_splits(
                splits,
                inputs.image_encoder,
                inputs.text_encoder,
                cache,
                split_names=("train",),
                progress=False,
                console=quiet,
            )
            seconds = time.perf_counter() - started
            images = frame["image_path"].nunique()
            if arm == "warm-up":
                continue
            results[arm] = (len(frame), images, seconds, _bytes(cache))
            print(
                f"{arm:9s}: {len(frame)} rows, {images} distinct images, {seconds:.1f} s, "
                f"{_bytes(cache) / 1e6:.1f} MB"
            )
    (_, ui, us, ub), (_, si, ss, sb) = results["unshared"], results["shared"]
    print(
        f"shared ÷ unshared: images encoded {si / ui:.3f}, time {ss / us:.3f}, cache size {sb / ub:.3f} "
        f"(torch threads {args.threads})"
    )


if __name__ == "__main__":
    main()
