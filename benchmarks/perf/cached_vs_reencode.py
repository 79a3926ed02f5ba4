"""Frozen/cached training vs re-encoding every epoch (finetune mode with frozen encoder weights).

Both arms train the same fusion with the same seeds on the same dataset; the only difference is where
the tokens come from: the feature cache (encoded once, memory-mapped) or the encoders run on every
batch of every epoch (``fusionzoo.encoders.live.LiveData`` with ``freeze_layers=-1``: all encoder
weights frozen, so both arms see identical encoders). Prints accuracy per arm (mean over seeds) and the
wall-clock speed-up of the training runs; the one-time cache build is reported separately.

    OMP_NUM_THREADS=2 python benchmarks/perf/cached_vs_reencode.py --data-dir /tmp/fz-perf --seeds 0,1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fusionzoo.prepare import DataOptions, prepare_data
from fusionzoo.train.config import RunConfig
from fusionzoo.train.trainer import train_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synth")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--fusion", default="concat_mlp")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--limit", type=int, default=None, help="subsample the training split")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    config = RunConfig(
        fusion=args.fusion,
        dim=args.dim,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=0,
        metric="accuracy",
        device="cpu",
    )
    print(
        f"torch threads: {torch.get_num_threads()}; fusion {args.fusion}, {args.epochs} epochs, seeds {seeds}"
    )

    started = time.perf_counter()
    cached = prepare_data(
        DataOptions(dataset=args.dataset, data_dir=args.data_dir, limit=args.limit), progress=False
    )
    prepare_cached = time.perf_counter() - started
    started = time.perf_counter()
    live = prepare_data(
        DataOptions(
            dataset=args.dataset, data_dir=args.data_dir, limit=args.limit, mode="finetune", freeze_layers=-1
        ),
        progress=False,
    )
    prepare_live = time.perf_counter() - started
    print(
        f"prepare: cached {prepare_cached:.1f} s (cache build or reuse), live {prepare_live:.1f} s; "
        f"{cached.size('train')} train rows"
    )

    results = {}
    for arm, data in (("cached", cached), ("re-encode", live)):
        accs, times = [], []
        for seed in seeds:
            t0 = time.perf_counter()
            result = train_run(
                config.replace(seed=seed, mode="frozen" if arm == "cached" else "finetune"), data
            )
            times.append(time.perf_counter() - t0)
            accs.append(result.metrics["accuracy"])
            print(
                f"  {arm:9s} seed {seed}: test acc {result.metrics['accuracy']:.4f}  {times[-1]:.1f} s",
                flush=True,
            )
        results[arm] = (accs, times)
    (ca, ct), (la, lt) = results["cached"], results["re-encode"]
    print(f"cached:    acc {statistics.mean(ca):.4f}  train {statistics.mean(ct):.1f} s/run")
    print(f"re-encode: acc {statistics.mean(la):.4f}  train {statistics.mean(lt):.1f} s/run")
    print(
        f"accuracy difference {100 * (statistics.mean(ca) - statistics.mean(la)):+.2f} points; "
        f"speed-up {statistics.mean(lt) / statistics.mean(ct):.1f}x per run "
        f"({(sum(lt)) / (sum(ct) + prepare_cached):.1f}x including the cache build/open)"
    )


if __name__ == "__main__":
    main()
