"""Encode throughput of the cache pipeline ÷ a bare ``model(x)`` loop on the same batches.

    python benchmarks/perf/encode_throughput.py [--rows 2000] [--batch-size 64] [--num-workers N]

The pipeline is ``encode_splits`` on the synth train split into a fresh cache (JPEG decode with draft
mode + transform in DataLoader workers, tokenization, both encoders, fp16 conversion, chunked writes
with sha256). It encodes each distinct image and each distinct text once; the bare loop runs only
``image_encoder(pixels)`` on the same distinct images and ``text_encoder(ids, mask)`` on the same
distinct texts, in the same batches, pre-decoded into memory. Ratio = bare seconds ÷ pipeline seconds
(target ≥ 0.9); items/s count the split's rows.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2000, help="train rows to encode (default 2000)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=None, help="DataLoader workers (default: auto)")
    parser.add_argument(
        "--data-dir", default=None, help="where the synth dataset lives (default: user cache)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()

    import torch
    from rich.console import Console

    from fusionzoo.datasets import load_dataset
    from fusionzoo.encoders.cache import encode_splits
    from fusionzoo.encoders.defaults import default_encoders

    if args.threads:
        torch.set_num_threads(args.threads)
    splits = load_dataset("synth", data_dir=args.data_dir)
    splits.train = splits.train.iloc[: args.rows].reset_index(drop=True)
    rows = len(splits.train)
    with tempfile.TemporaryDirectory(prefix="fz-encode-perf-") as tmp:
        image, text = default_encoders("synth", splits, tmp)
        quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - lives for the script
        # warm-up (first-call allocations, thread pools) on a few rows, outside the timing
        with torch.inference_mode():
            image(torch.zeros(args.batch_size, *image.data_config["input_size"]))
        started = time.perf_counter()
        encode_splits(
            splits,
            image,
            text,
            tmp,
            split_names=["train"],
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            progress=False,
            console=quiet,
        )
        pipeline = time.perf_counter() - started

        # the same distinct inputs in the same batches, decoded and tokenized up front
        from fusionzoo.data.images import ImageTextDataset
        from fusionzoo.encoders.cache_plan import distinct_images, distinct_texts

        first_images, _ = distinct_images(splits.train)
        dataset = ImageTextDataset(splits.train.iloc[first_images], image.transform)
        first_texts, _ = distinct_texts(splits.train["text"])
        texts = splits.train["text"].astype(str).iloc[first_texts].tolist()
        batches = []
        for start in range(0, len(dataset), args.batch_size):
            items = [dataset[i] for i in range(start, min(len(dataset), start + args.batch_size))]
            batches.append(("image", torch.stack([item["image"] for item in items if item["ok"]])))
        for start in range(0, len(texts), args.batch_size):
            batches.append(("text", text.tokenize(texts[start : start + args.batch_size])))
        # the baseline gets its best thread count (1 or torch's default), so it is not handicapped
        default_threads = torch.get_num_threads()
        bare_by_threads = {}
        for threads in sorted({1, default_threads}):
            torch.set_num_threads(threads)
            started = time.perf_counter()
            with torch.inference_mode():
                for kind, batch in batches:
                    if kind == "image":
                        image(batch)
                    else:
                        text(batch.input_ids, batch.attention_mask)
            bare_by_threads[threads] = time.perf_counter() - started
        torch.set_num_threads(default_threads)
        bare = min(bare_by_threads.values())

    print(
        f"rows {rows} ({len(first_images)} distinct images, {len(texts)} distinct texts), batch "
        f"{args.batch_size}, torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}"
    )
    print(f"pipeline (encode_splits): {pipeline:.2f} s = {rows / pipeline:,.0f} items/s")
    for threads, seconds in bare_by_threads.items():
        print(f"bare model(x) loop, {threads} thread(s): {seconds:.2f} s = {rows / seconds:,.0f} items/s")
    print(f"ratio pipeline/bare throughput: {bare / pipeline:.2f} (target >= 0.9)")


if __name__ == "__main__":
    main()
