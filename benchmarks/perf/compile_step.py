"""``torch.compile`` of the training step: compile time against the time it saves per step, in one run.

    OMP_NUM_THREADS=1 python benchmarks/perf/compile_step.py                       # quick + real shapes
    OMP_NUM_THREADS=1 python benchmarks/perf/compile_step.py --shapes real --precision bf16

For each fusion + head at each shape set (``quick``: the embedded dataset's 17 image tokens × 192 and
16 text tokens × 256 at D 64; ``real``: the real preset's 49 × 1280 and 12 × 384 at D 256; batch 64,
``--threads`` threads) it builds the model twice from the same seed, times ``--steps`` eager training
steps (:func:`fusionzoo.train.timed_step.make_train_step`: autocast forward, fp32 loss, backward, clipping,
fused AdamW) and the same steps with the model's forward through ``torch.compile`` as the trainer
compiles it (:func:`fusionzoo.train.compiled.compile_forward`: inductor, the backward compiled with
it), alternating eager and compiled steps. The compile cost is what a run pays: the first compiled
step, the recompile for the epoch's smaller last batch and the first compiled eval-mode forward
(no-grad), each minus an eager step of its kind. It prints the step times,
the saving per step, and the break-even: the number of steps a run must train for the compile to pay
(``never`` when the compiled step is not faster). The rule for ``--compile auto``
(:mod:`fusionzoo.train.compiled`) comes from these numbers (docs/scale.md).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fusionzoo.metrics._flops import synthetic_batch
from fusionzoo.train.compiled import compile_forward
from fusionzoo.train.config import RunConfig
from fusionzoo.train.model import FusionModel
from fusionzoo.train.timed_step import make_train_step

SHAPES = {  # image tokens, image dim, text tokens, text dim, D
    "quick": (17, 192, 16, 256, 64),
    "real": (49, 1280, 12, 384, 256),
}
FUSIONS = ("fluid:queries=8,layers=1@moe", "film@mlp", "concat_mlp@mlp")


def build(spec: str, shapes: tuple[int, ...], seed: int = 0) -> tuple[FusionModel, RunConfig]:
    fusion, _, head = spec.partition("@")
    image_tokens, image_dim, _, text_dim, dim = shapes
    config = RunConfig(fusion=fusion, head=head or None, dim=dim, device="cpu")
    torch.manual_seed(seed)
    model = FusionModel.from_config(
        config, image_dim=image_dim, text_dim=text_dim, num_classes=36, num_image_tokens=image_tokens
    )
    return model, config


def timed(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(spec: str, shapes: tuple[int, ...], dtype: torch.dtype | None, steps: int) -> dict[str, float]:
    image_tokens, image_dim, text_tokens, text_dim, _ = shapes
    batch = synthetic_batch(64, image_tokens, image_dim, text_tokens, text_dim, 36)
    small = {k: v[:37] for k, v in batch.items()}  # the epoch's last, smaller batch
    model, config = build(spec, shapes)
    twin, _ = build(spec, shapes)
    compiled = compile_forward(twin)
    eager_step = make_train_step(model, batch, config, dtype)
    eager_small = make_train_step(model, small, config, dtype)
    compiled_step = make_train_step(twin, batch, config, dtype, forward=compiled)
    compiled_small = make_train_step(twin, small, config, dtype, forward=compiled)

    def eval_forward(run):  # noqa: ANN001, ANN202
        def go() -> None:
            with (
                torch.no_grad(),
                torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None),
            ):
                run(batch)

        return go

    torch._dynamo.reset()
    eager_first = timed(eager_step) + timed(eager_small)
    first = timed(compiled_step) + timed(compiled_small)  # compile + recompile (dynamic batch size)
    model.eval(), twin.eval()
    eager_eval, compiled_eval = timed(eval_forward(model.forward_batch)), timed(eval_forward(compiled))
    model.train(), twin.train()
    eager, fast = [], []
    for _ in range(steps):
        eager.append(timed(eager_step))
        fast.append(timed(compiled_step))
    eager_t, fast_t = statistics.median(eager), statistics.median(fast)
    cost = (first - eager_first) + (compiled_eval - eager_eval)
    saving = eager_t - fast_t
    return {"eager": eager_t, "compiled": fast_t, "cost": cost, "saving": saving}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", default="quick,real")
    parser.add_argument("--fusions", nargs="+", default=list(FUSIONS), help="fusion@head ...")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.precision == "bf16" else None
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {args.precision}, batch 64, {args.steps} steps"
    )
    print(f"{'shapes':6} {'fusion@head':34} {'eager ms':>9} {'compiled ms':>11} {'ratio':>6} "
          f"{'compile s':>9} {'break-even steps':>16}")  # fmt: skip
    for shape_name in args.shapes.split(","):
        for spec in args.fusions:
            r = measure(spec, SHAPES[shape_name], dtype, args.steps)
            even = f"{r['cost'] / r['saving']:.0f}" if r["saving"] > 0 else "never"
            print(
                f"{shape_name:6} {spec:34} {r['eager'] * 1e3:9.1f} {r['compiled'] * 1e3:11.1f} "
                f"{r['compiled'] / r['eager']:6.2f} {r['cost']:9.1f} {even:>16}",
                flush=True,
            )


if __name__ == "__main__":
    main()
