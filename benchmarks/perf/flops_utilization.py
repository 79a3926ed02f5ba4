"""Achieved FLOP/s of a training step ÷ the peak matmul FLOP/s of the precision it runs in.

    python benchmarks/perf/flops_utilization.py                        # real preset shapes, fp32 and bf16
    python benchmarks/perf/flops_utilization.py --precision bf16 --profile
    python benchmarks/perf/flops_utilization.py --dim 64 --image-tokens 17 --image-dim 192 \\
        --text-tokens 16 --text-dim 256                                # the quick preset's shapes

Defaults: the real preset's shapes (49 image tokens × 1280 — EfficientNet-Lite0's 7×7 map —, 12 text
tokens × 384 — MiniLM —, D 256, batch 64, 36 classes) and its scaled-down FLUID (8 queries, 1 Q-Former
block) with the MoE head, and concat_mlp; ``--threads`` 1 (the bench's default per run).

FLOPs of one step (forward + backward, CE + aux losses) are counted once per model with
``torch.utils.flop_counter.FlopCounterMode`` in fp32, where the MoE experts run their ``grouped_mm``
dispatch: the count is the *useful* work, every expert included (2 · routed tokens · k · (in·hidden +
hidden·out) forward, :func:`fusionzoo.metrics._flops.grouped_mm_flop`), whatever dispatch the timed
precision then executes (under bf16 autocast the experts run the padded or loop dispatch, whose
padding is not counted). Elementwise ops count 0: the ratio is an honest "useful matmul work"
utilisation. The step is timed as the trainer runs it (:func:`fusionzoo.train.timed_step.make_train_step`:
autocast forward, fp32 loss, backward, clipping, fused AdamW), best of ``--steps``. The peak is the
best ``torch.mm`` of ``--peak-size``³ in the same dtype, in the same process, on the same threads.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fusionzoo.metrics._flops import peak_matmul_flops, synthetic_batch, train_step_flops
from fusionzoo.train.config import RunConfig
from fusionzoo.train.model import FusionModel
from fusionzoo.train.timed_step import make_train_step

DTYPES = {"fp32": None, "bf16": torch.bfloat16}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--fusions",
        nargs="+",
        default=["fluid:queries=8,layers=1@moe", "concat_mlp@mlp"],
        help="fusion@head ...",
    )
    parser.add_argument("--precision", default="fp32,bf16", help="comma-separated: fp32, bf16")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--image-tokens", type=int, default=49)
    parser.add_argument("--image-dim", type=int, default=1280)
    parser.add_argument("--text-tokens", type=int, default=12)
    parser.add_argument("--text-dim", type=int, default=384)
    parser.add_argument("--classes", type=int, default=36)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--peak-size", type=int, default=1024)
    parser.add_argument("--profile", action="store_true", help="print the top ops of one step per row")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    shapes = (args.image_tokens, args.image_dim, args.text_tokens, args.text_dim)
    batch = synthetic_batch(args.batch, *shapes, args.classes)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch}, D {args.dim}, "
        f"image {args.image_tokens}×{args.image_dim}, text {args.text_tokens}×{args.text_dim}"
    )
    peaks = {
        p: peak_matmul_flops(args.peak_size, seconds=1.0, dtype=DTYPES[p] or torch.float32)
        for p in precisions
    }
    print("peak matmul: " + ", ".join(f"{p} {v / 1e9:.1f} GFLOP/s" for p, v in peaks.items()))
    print(
        f"{'fusion@head':32} {'prec':5} {'GFLOP/step':>10} {'step ms':>8} {'median':>7} {'GFLOP/s':>8} {'util':>5}"
    )
    for spec in args.fusions:
        fusion, _, head = spec.partition("@")
        config = RunConfig(fusion=fusion, head=head or None, dim=args.dim, device="cpu")
        torch.manual_seed(0)
        model = FusionModel.from_config(
            config,
            image_dim=args.image_dim,
            text_dim=args.text_dim,
            num_classes=args.classes,
            num_image_tokens=args.image_tokens,
        )
        flops = train_step_flops(model, batch)  # fp32: the experts' grouped dispatch, useful FLOPs
        for precision in precisions:
            step = make_train_step(model, batch, config, DTYPES[precision])
            for _ in range(2):
                step()
            times = []
            for _ in range(args.steps):
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
            best = min(times)
            achieved = flops / best
            print(
                f"{spec:32} {precision:5} {flops / 1e9:10.2f} {best * 1e3:8.1f} "
                f"{statistics.median(times) * 1e3:7.1f} {achieved / 1e9:8.1f} {achieved / peaks[precision]:5.2f}",
                flush=True,
            )
            if args.profile:
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                    step()
                print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))


if __name__ == "__main__":
    main()
