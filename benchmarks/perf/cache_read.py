"""One training epoch over the cached features: time in I/O + collate vs model compute.

    python benchmarks/perf/cache_read.py [--dataset synth] [--fusion concat_mlp] [--batch-size 64]
    python benchmarks/perf/cache_read.py --dataset glami1m --data-dir /work/data/checkset \\
        --image-encoder timm:tf_efficientnet_lite0@/work/data/encoders/efficientnet_lite0.safetensors \\
        --text-encoder hf:/work/data/encoders/all-MiniLM-L6-v2

Encodes (or reuses) the dataset's features, then runs one epoch of ``FusionModel`` training per fusion
the way the trainer does: shuffled index batches (``training_batches``), each batch from
``FeatureData.batch("train", indices)``, forward + backward + AdamW step. Two read paths are timed:

- ``ram``: the default — the split read into RAM once when it fits the memory budget (the one-time read
  is timed separately and not counted in the epoch);
- ``pread``: ``memory_budget=0``, every batch read from the cache files with ``os.pread`` (the path of a
  split that does not fit in RAM).

The batch time (waiting for ``batch()``: reads + collate) and the model time (forward + backward +
step) are measured separately; the share of the epoch spent on batches should be ≤ 10 %. The script
only uses ``FeatureData(...)`` and ``batch()``, so it runs unchanged against older fusionzoo versions
(run it from their checkout to compare).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="synth")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--image-encoder", default=None)
    parser.add_argument("--text-encoder", default=None)
    parser.add_argument("--fusion", action="append", help="fusion spec(s) (default: concat_mlp and fluid)")
    parser.add_argument("--head", default="linear")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--paths", default="ram,pread", help="read paths to time: ram, pread")
    args = parser.parse_args()

    import torch
    from rich.console import Console

    from fusionzoo.datasets import load_dataset
    from fusionzoo.encoders.cache import default_cache_dir, encode_splits
    from fusionzoo.encoders.defaults import build_encoders
    from fusionzoo.train.inputs import FeatureData
    from fusionzoo.train.model import FusionModel
    from fusionzoo.train.trainer import training_batches

    if args.threads:
        torch.set_num_threads(args.threads)
    splits = load_dataset(args.dataset, data_dir=args.data_dir)
    cache = args.cache_dir or default_cache_dir(args.data_dir)
    image, text = build_encoders(
        args.dataset, splits, cache, image_spec=args.image_encoder, text_spec=args.text_encoder
    )
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - lives for the script
    features = encode_splits(splits, image, text, cache, progress=False, console=quiet)
    train = features["train"]
    stored = getattr(train, "num_images", train.image_tokens.shape[0])
    print(
        f"{args.dataset} train: {len(train)} rows, {stored} stored images {tuple(train.image_tokens.shape[1:])}, "
        f"{train.text_tokens.shape[0]} stored text tokens × {train.text_dim} (fp16 cache "
        f"{train.info.get('bytes', 0) / 2**20:.0f} MB), batch {args.batch_size}, torch threads {torch.get_num_threads()}"
    )
    for path in args.paths.split(","):
        budget = {} if path == "ram" else {"memory_budget": 0}
        data = FeatureData(
            features["train"], features["val"], features["test"], num_classes=splits.num_classes, **budget
        )
        started = time.perf_counter()
        dense = data.materialised("train")
        load = time.perf_counter() - started
        where = "in RAM" if dense is not None else "pread from the cache files"
        print(f"[{path}] train split {where}; one-time read {load:.2f} s")
        for fusion in args.fusion or ["concat_mlp", "fluid:queries=8,layers=1"]:
            torch.manual_seed(0)
            model = FusionModel(
                fusion, args.head, image_dim=data.image_dim, text_dim=data.text_dim, dim=args.dim,
                num_classes=splits.num_classes, num_image_tokens=data.num_image_tokens,
            )  # fmt: skip
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
            batches = training_batches(data.size("train"), args.batch_size, torch.Generator().manual_seed(0))
            batch_time = model_time = 0.0
            started = time.perf_counter()
            for indices in batches:
                t0 = time.perf_counter()
                batch = data.batch("train", indices)
                t1 = time.perf_counter()
                out = model(batch["image"], batch["text"], batch["image_mask"], batch["text_mask"])
                loss = torch.nn.functional.cross_entropy(out.logits, batch["label"])
                for aux in out.aux_losses.values():
                    loss = loss + aux
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                model_time += time.perf_counter() - t1
                batch_time += t1 - t0
            total = time.perf_counter() - started
            print(
                f"[{path}] {fusion:>26}: epoch {total:.2f} s ({len(batches)} steps): I/O+collate {batch_time:.2f} s "
                f"({100 * batch_time / total:.1f}%), model {model_time:.2f} s ({100 * model_time / total:.1f}%)"
            )


if __name__ == "__main__":
    main()
