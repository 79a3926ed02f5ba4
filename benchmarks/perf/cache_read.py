"""One training epoch over the cached features: time in I/O + collate vs model compute.

    python benchmarks/perf/cache_read.py [--fusion concat_mlp] [--head linear] [--batch-size 64]

Encodes (or reuses) the synth train split with the default encoders, then runs one epoch of
``FusionModel`` training with a shuffled ``DataLoader`` over ``collate_features`` (memory-mapped fp16
tokens → float32 batches, text padded per batch). The loader time (waiting for the next batch) and the
model time (forward + backward + optimizer step) are measured separately; the epoch should be
dominated by model compute.
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
    parser.add_argument("--fusion", action="append", help="fusion spec(s) (default: concat_mlp and fluid)")
    parser.add_argument("--head", default="linear")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()

    import torch
    from rich.console import Console

    from fusionzoo.data import load_dataset
    from fusionzoo.encoders.cache import default_cache_dir, encode_splits
    from fusionzoo.encoders.defaults import default_encoders
    from fusionzoo.encoders.features import FeatureDataset
    from fusionzoo.train.model import FusionModel

    splits = load_dataset("synth", data_dir=args.data_dir)
    cache = args.cache_dir or default_cache_dir(args.data_dir)
    image, text = default_encoders("synth", splits, cache)
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - lives for the script
    train = encode_splits(splits, image, text, cache, split_names=["train"], progress=False, console=quiet)[
        "train"
    ]
    dataset = FeatureDataset(train)
    print(
        f"train: {len(train)} rows, image {tuple(train.image_tokens.shape)}, text {train.text_tokens.shape[0]} "
        f"tokens × {train.text_dim} (memory-mapped fp16), batch {args.batch_size}, torch threads "
        f"{torch.get_num_threads()}, loader workers {args.num_workers}"
    )
    for fusion in args.fusion or ["concat_mlp", "fluid:queries=8,layers=1"]:
        torch.manual_seed(0)
        model = FusionModel(
            fusion,
            args.head,
            image_dim=train.image_dim,
            text_dim=train.text_dim,
            dim=args.dim,
            num_classes=splits.num_classes,
            num_image_tokens=train.num_image_tokens,
        )
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=args.batch_size,
            shuffle=True,
            collate_fn=dataset.collate,
            num_workers=args.num_workers,
        )
        loader_time = model_time = 0.0
        steps = 0
        started = time.perf_counter()
        iterator = iter(loader)
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                break
            t1 = time.perf_counter()
            out = model(batch["image"], batch["text"], batch["image_mask"], batch["text_mask"])
            loss = torch.nn.functional.cross_entropy(out.logits, batch["label"])
            for aux in out.aux_losses.values():
                loss = loss + aux
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            model_time += time.perf_counter() - t1
            loader_time += t1 - t0
            steps += 1
        total = time.perf_counter() - started
        print(
            f"{fusion:>28}: epoch {total:.2f} s ({steps} steps): I/O+collate {loader_time:.2f} s "
            f"({100 * loader_time / total:.0f}%), model {model_time:.2f} s ({100 * model_time / total:.0f}%), "
            f"I/O÷model {loader_time / model_time:.2f}"
        )


if __name__ == "__main__":
    main()
