"""The GPU checks in one prepared script: run it on a machine with a CUDA GPU (< 10 minutes), read the ratios.

    python benchmarks/perf/gpu_checks.py                    # every check, about 5-8 minutes on one GPU
    python benchmarks/perf/gpu_checks.py --only amp,moe     # some of them
    python benchmarks/perf/gpu_checks.py --device cpu --tiny   # the code paths on a CPU, tiny shapes

On a machine without CUDA it prints "no GPU" and exits 0 (CI never needs a GPU). Each check is timed
with ``torch.cuda.synchronize`` around best-of-N steps, prints its numbers and ratios measured in this
one process, and a failing check prints its error and the others still run; a check that would start
after ``--budget`` seconds (default 540) is skipped with a message. The checks:

- ``amp``: the real preset's FLUID + MoE training step (49 image tokens × 1280, 12 text tokens × 384,
  D 256, batch 64; :func:`fusionzoo.train.timed_step.make_train_step`) in fp32 and under bf16 autocast
  (fp32 master weights and loss): step times, their ratio, and the FLOP utilisation of each against
  the matmul peak of its own dtype measured here (fp32 with TF32 off, bf16); concat_mlp too.
- ``moe``: the MoE experts (``ExpertMLPs``, 8 experts, top-2, 4096 routed tokens × 256) forward +
  backward with each dispatch (grouped ``grouped_mm``, padded ``bmm``, per-expert loop) in fp32 and
  bf16, the ratios to the loop and the largest difference to the loop's output.
- ``ddp``: one DistributedDataParallel step over NCCL with 2 processes (2 GPUs needed, else skipped
  with a message): gradients equal on both ranks and equal to one process on the whole batch.
- ``compile``: the ``amp`` step with the forward through ``torch.compile`` (as ``--compile on``):
  compile seconds, step ratio, break-even steps — the numbers for ``--compile auto``'s CUDA rule.
- ``bench``: the quick preset (fluid, film, concat_mlp; 3 seeds, 3 epochs) on the GPU with
  ``--batch-seeds`` and ``--no-batch-seeds`` when this fusionzoo has the flag (else skipped), wall ratio.
- ``encode``: encoder throughput on random weights built locally (no download): ViT-B/16 (timm
  ``vit_base_patch16_224``, 224² images) and an mBERT-sized BERT (transformers ``BertConfig``: 119,547
  tokens, 768 wide, 12 layers; 64 tokens per text), batches of 128, items/s in fp32, bf16 and fp16
  autocast, and the ratios to fp32.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

CHECKS = ("amp", "moe", "ddp", "compile", "bench", "encode")


def timed(fn: Callable[[], Any], device: torch.device, steps: int) -> float:
    """Best of ``steps`` wall seconds of ``fn()``, synchronised on CUDA, after two warm-up calls."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(2):
        fn()
    best = float("inf")
    for _ in range(steps):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def peak(device: torch.device, dtype: torch.dtype, size: int) -> float:
    a, b = (
        torch.randn(size, size, device=device, dtype=dtype),
        torch.randn(size, size, device=device, dtype=dtype),
    )
    return 2 * size**3 / timed(lambda: torch.mm(a, b), device, 10)


def real_model(spec: str, device: torch.device, tiny: bool) -> tuple[Any, Any, dict[str, torch.Tensor]]:
    from fusionzoo.metrics._flops import synthetic_batch
    from fusionzoo.train.config import RunConfig
    from fusionzoo.train.model import FusionModel

    fusion, _, head = spec.partition("@")
    image_tokens, image_dim, text_tokens, text_dim, dim, batch = (
        (5, 64, 4, 32, 32, 8) if tiny else (49, 1280, 12, 384, 256, 64)
    )
    config = RunConfig(fusion=fusion, head=head or None, dim=dim, device=str(device))
    torch.manual_seed(0)
    model = FusionModel.from_config(
        config, image_dim=image_dim, text_dim=text_dim, num_classes=36, num_image_tokens=image_tokens
    ).to(device)
    data = synthetic_batch(batch, image_tokens, image_dim, text_tokens, text_dim, 36)
    return model, config, {k: v.to(device) for k, v in data.items()}


# ------------------------------------------------------------------------------------------------ checks
def check_amp(device: torch.device, args: argparse.Namespace) -> None:
    from fusionzoo.metrics._flops import train_step_flops
    from fusionzoo.train.timed_step import make_train_step

    torch.backends.cuda.matmul.allow_tf32 = False
    size = 256 if args.tiny else 4096
    peaks = {"fp32": peak(device, torch.float32, size), "bf16": peak(device, torch.bfloat16, size)}
    print(
        f"  matmul peak {size}³: fp32 {peaks['fp32'] / 1e12:.2f} TFLOP/s, bf16 {peaks['bf16'] / 1e12:.2f} TFLOP/s"
    )
    for spec in ("fluid:queries=8,layers=1@moe", "concat_mlp@mlp"):
        model, config, batch = real_model(spec, device, args.tiny)
        flops = train_step_flops(model, batch)
        times = {}
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            times[name] = timed(make_train_step(model, batch, config, dtype), device, args.steps)
            print(
                f"  {spec:30} {name}: {times[name] * 1e3:8.2f} ms/step, {flops / 1e9:.2f} GFLOP, "
                f"utilisation {flops / times[name] / peaks[name]:.2f} of the {name} peak"
            )
        print(f"  {spec:30} bf16 / fp32 step time: {times['bf16'] / times['fp32']:.2f}")


def _moe_step(layer: Any, x: torch.Tensor, index: torch.Tensor, weights: torch.Tensor, dispatch: str) -> Any:
    out = layer(x, index, weights, dispatch=dispatch)
    out.float().sum().backward()
    return out


def check_moe(device: torch.device, args: argparse.Namespace) -> None:
    from fusionzoo.layers.moe import ExpertMLPs

    experts, dim, routed = 8, (32 if args.tiny else 256), (64 if args.tiny else 4096)
    for dtype in (torch.float32, torch.bfloat16):
        torch.manual_seed(0)
        layer = ExpertMLPs(experts, dim, 4 * dim, dim).to(device=device, dtype=dtype)
        x = torch.randn(routed, dim, device=device, dtype=dtype, requires_grad=True)
        index = torch.stack([torch.randperm(experts, device=device)[:2] for _ in range(routed)])
        weights = torch.softmax(torch.randn(routed, 2, device=device), -1).to(dtype)
        outputs, times = {}, {}
        for dispatch in ("grouped", "padded", "loop"):
            if dispatch == "grouped" and not layer.grouped_supported(x):
                print(f"  {dtype}: grouped dispatch not supported here (torch.nn.functional.grouped_mm)")
                continue

            step = partial(_moe_step, layer, x, index, weights, dispatch)
            outputs[dispatch] = step().detach().float()
            times[dispatch] = timed(step, device, args.steps)
        loop = times["loop"]
        line = ", ".join(
            f"{d} {t * 1e3:.2f} ms ({loop / t:.1f}× the loop, max |Δ| {(outputs[d] - outputs['loop']).abs().max():.1e})"
            for d, t in times.items()
        )
        print(f"  {str(dtype).removeprefix('torch.')}: {line}")


def _ddp_worker(rank: int, world: int, port: int, queue: Any) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("nccl", rank=rank, world_size=world)
    torch.cuda.set_device(rank)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.GELU(), torch.nn.Linear(64, 4)).cuda(rank)
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank])
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 64, generator=g).cuda(rank), torch.randint(0, 4, (32,), generator=g).cuda(rank)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = ddp(x[rank * 16 : (rank + 1) * 16])
    torch.nn.functional.cross_entropy(logits.float(), y[rank * 16 : (rank + 1) * 16]).backward()
    queue.put((rank, [p.grad.cpu() for p in model.parameters()]))
    dist.destroy_process_group()


def check_ddp(device: torch.device, args: argparse.Namespace) -> None:
    import torch.multiprocessing as mp

    if device.type != "cuda" or torch.cuda.device_count() < 2:
        print(f"  skipped: DDP over NCCL needs 2 GPUs, this machine has {torch.cuda.device_count()}")
        return
    context = mp.get_context("spawn")
    queue = context.Queue()
    port = 29500 + os.getpid() % 1000
    start = time.perf_counter()
    processes = [context.Process(target=_ddp_worker, args=(r, 2, port, queue)) for r in range(2)]
    for p in processes:
        p.start()
    grads = dict(queue.get(timeout=300) for _ in processes)
    for p in processes:
        p.join(60)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.GELU(), torch.nn.Linear(64, 4)).cuda()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 64, generator=g).cuda(), torch.randint(0, 4, (32,), generator=g).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(x)
    halves = [
        torch.nn.functional.cross_entropy(logits[i * 16 : (i + 1) * 16].float(), y[i * 16 : (i + 1) * 16])
        for i in range(2)
    ]
    (sum(halves) / 2).backward()
    same = all(torch.equal(a, b) for a, b in zip(grads[0], grads[1], strict=True))
    diff = max(
        float((a - p.grad.cpu()).abs().max()) for a, p in zip(grads[0], model.parameters(), strict=True)
    )
    print(f"  2 ranks over NCCL in {time.perf_counter() - start:.1f} s: ranks' gradients equal: {same}; "
          f"max |Δ| to one process on the whole batch: {diff:.1e}")  # fmt: skip


def check_compile(device: torch.device, args: argparse.Namespace) -> None:
    from fusionzoo.train.compiled import compile_forward
    from fusionzoo.train.timed_step import make_train_step

    model, config, batch = real_model("fluid:queries=8,layers=1@moe", device, args.tiny)
    twin, _, _ = real_model("fluid:queries=8,layers=1@moe", device, args.tiny)
    eager = timed(make_train_step(model, batch, config, torch.bfloat16), device, args.steps)
    step = make_train_step(twin, batch, config, torch.bfloat16, forward=compile_forward(twin))
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    first = time.perf_counter() - start
    compiled = timed(step, device, args.steps)
    saving = eager - compiled
    even = f"{(first - eager) / saving:.0f} steps" if saving > 0 else "never (not faster)"
    print(f"  fluid + moe, bf16: eager {eager * 1e3:.2f} ms, compiled {compiled * 1e3:.2f} ms "
          f"(ratio {compiled / eager:.2f}); first compiled step {first:.1f} s; break-even {even}")  # fmt: skip


def check_bench(device: torch.device, args: argparse.Namespace) -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "fusionzoo", "bench", "--help"], capture_output=True, text=True
    )
    if "--batch-seeds" not in help_text.stdout:
        print("  skipped: this fusionzoo has no --batch-seeds flag")
        return
    root = Path(tempfile.mkdtemp(prefix="fz-gpu-"))
    common = [
        "--fusions",
        "fluid,film,concat_mlp",
        "--epochs",
        "1" if args.tiny else "3",
        "--device",
        str(device),
    ]
    subprocess.run([sys.executable, "-m", "fusionzoo", "bench", *common, "--seeds", "0", "--out", str(root / "warm")],
                   check=True, capture_output=True)  # fmt: skip
    walls = {}
    for flag in ("--batch-seeds", "--no-batch-seeds"):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "fusionzoo", "bench", *common, flag, "--out", str(root / flag)],
                              capture_output=True, text=True)  # fmt: skip
        walls[flag] = time.perf_counter() - start
        status = "ok" if done.returncode == 0 else f"exit {done.returncode}: {done.stderr[-300:]}"
        print(f"  quick preset {flag}: {walls[flag]:.1f} s ({status})")
    print(f"  batched / unbatched wall: {walls['--batch-seeds'] / walls['--no-batch-seeds']:.2f}")


def check_encode(device: torch.device, args: argparse.Namespace) -> None:
    import timm
    from transformers import BertConfig, BertModel

    batch = 4 if args.tiny else 128
    if args.tiny:
        vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32)
        bert = BertModel(BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=64))  # fmt: skip
        images = torch.randn(batch, 3, 32, 32)
    else:
        vit = timm.create_model("vit_base_patch16_224", pretrained=False)
        bert = BertModel(BertConfig(vocab_size=119547))  # bert-base-multilingual-cased's size
        images = torch.randn(batch, 3, 224, 224)
    ids = torch.randint(0, bert.config.vocab_size, (batch, 16 if args.tiny else 64))
    for name, model, inputs in (("ViT-B/16", vit, (images,)), ("mBERT-sized", bert, (ids,))):
        model = model.to(device).eval()
        inputs = tuple(t.to(device) for t in inputs)
        rates = {}
        for label, dtype in (("fp32", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
            if dtype is torch.float16 and device.type != "cuda":
                continue

            def run(dtype: torch.dtype | None = dtype, model: Any = model, inputs: tuple = inputs) -> None:
                with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32,
                                                             enabled=dtype is not None):  # fmt: skip
                    model(*inputs)

            rates[label] = batch / timed(run, device, args.steps)
        print(
            f"  {name}: "
            + ", ".join(f"{k} {v:.0f} items/s ({v / rates['fp32']:.2f}×)" for k, v in rates.items())
        )


# -------------------------------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", default=",".join(CHECKS), help=f"comma-separated subset of {', '.join(CHECKS)}"
    )
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu with --tiny (the code paths)")
    parser.add_argument(
        "--tiny", action="store_true", help="tiny shapes: check the code paths, not the speed"
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement (best of)")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds; later checks are skipped")
    args = parser.parse_args()
    only = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = sorted(set(only) - set(CHECKS))
    if unknown:
        parser.error(f"--only: unknown check(s) {', '.join(unknown)}; choose from {', '.join(CHECKS)}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no GPU: torch.cuda.is_available() is False on this machine; nothing to check (exit 0)")
        return 0
    if device.type == "cpu":
        torch.set_num_threads(1)  # the code paths only; one thread as the bench trains
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__} on {where}{' (tiny shapes)' if args.tiny else ''}")
    started, failed = time.perf_counter(), []
    for name in only:
        if time.perf_counter() - started > args.budget:
            print(f"[{name}] skipped: the {args.budget:.0f} s budget is spent")
            continue
        print(f"[{name}]", flush=True)
        check_start = time.perf_counter()
        try:
            globals()[f"check_{name}"](device, args)
        except Exception:  # a failed check is reported; the others still run
            failed.append(name)
            print(f"  FAILED:\n{traceback.format_exc()}")
        print(f"  ({time.perf_counter() - check_start:.1f} s)", flush=True)
    print(f"done in {time.perf_counter() - started:.0f} s; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
