"""Achieved FLOP/s of a FLUID + MoE training step ÷ the peak fp32 matmul FLOP/s of this process.

FLOPs of one step (forward + backward of the full FusionModel with CE and aux losses) are counted with
``torch.utils.flop_counter.FlopCounterMode`` (matmuls / attention; elementwise ops count 0, so the
ratio is an honest "useful matmul work" utilisation). The step is timed as the trainer runs it
(forward, loss, backward, grad clipping, fused AdamW). Peak = best large ``torch.mm`` in the same
process with the same thread count.

    OMP_NUM_THREADS=2 python benchmarks/perf/flops_utilization.py               # defaults below
    OMP_NUM_THREADS=2 python benchmarks/perf/flops_utilization.py --dim 64 --batch 128   # quick preset
"""

from __future__ import annotations

import argparse
import time

import torch

from fusionzoo.metrics._flops import peak_matmul_flops, synthetic_batch, train_step_flops
from fusionzoo.train.config import RunConfig
from fusionzoo.train.losses import LossComposer
from fusionzoo.train.model import FusionModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fusion", default="fluid:queries=32,layers=2,heads=8")
    parser.add_argument("--head", default="moe")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--image-tokens", type=int, default=17)  # the synth ViT: 17 × 192
    parser.add_argument("--image-dim", type=int, default=192)
    parser.add_argument("--text-tokens", type=int, default=16)  # the synth BERT: ~14 tokens × 256
    parser.add_argument("--text-dim", type=int, default=256)
    parser.add_argument("--classes", type=int, default=36)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()

    torch.manual_seed(0)
    config = RunConfig(fusion=args.fusion, head=args.head, dim=args.dim, device="cpu")
    model = FusionModel.from_config(
        config,
        image_dim=args.image_dim,
        text_dim=args.text_dim,
        num_classes=args.classes,
        num_image_tokens=args.image_tokens,
    )
    batch = synthetic_batch(
        args.batch, args.image_tokens, args.image_dim, args.text_tokens, args.text_dim, args.classes
    )
    flops = train_step_flops(model, batch)
    loss_fn = LossComposer.from_config(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    params = [p for p in model.parameters()]

    def step() -> None:
        out = model(batch["image"], batch["text"], batch["image_mask"], batch["text_mask"])
        loss, _ = loss_fn(out.logits, batch["label"], out.aux_losses)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        optimizer.step()

    model.train()
    for _ in range(2):
        step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    step_time = min(times)
    peak = peak_matmul_flops(1024, seconds=1.0)
    achieved = flops / step_time
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"threads {torch.get_num_threads()} | {args.fusion} + {args.head}, D={args.dim}, batch {args.batch}, "
        f"{n_params / 1e6:.2f}M params"
    )
    print(
        f"FLOPs/step {flops / 1e9:.2f} G | step {step_time * 1e3:.1f} ms (best of {args.steps}; median "
        f"{sorted(times)[len(times) // 2] * 1e3:.1f} ms) | achieved {achieved / 1e9:.1f} GFLOP/s"
    )
    print(f"peak fp32 matmul {peak / 1e9:.1f} GFLOP/s | utilisation {achieved / peak:.2f}")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    print("top ops by self CPU time (what limits utilisation):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


if __name__ == "__main__":
    main()
