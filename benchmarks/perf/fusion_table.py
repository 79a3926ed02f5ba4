"""Every registered fusion with its reference, symmetry, output tokens and cost at D = 256 (the table of
docs/benchmarking.md, "The fusions").

Cost is measured with the project's own efficiency metrics on a ``FusionModel`` (projections + fusion +
head) at the check set's token shapes under the real preset: 49 image tokens × 1280 (the 7×7 map),
12 text tokens × 384 (all real), 42 classes, D = 256, every fusion at its defaults with the ``mlp``
head (the same head everywhere, so the rows differ only in the fusion): ``params`` (trainable
parameters on the forward path) and ``gflops_forward`` (FlopCounterMode, 2·MAC, eval-mode forward
at batch 16 ÷ 16). "fusion params" counts the fusion module alone.

    python benchmarks/perf/fusion_table.py
"""

from __future__ import annotations

import torch

from fusionzoo import registry
from fusionzoo.metrics.base import ModelContext
from fusionzoo.train.model import FusionModel, count_parameters

SHAPE = {"image_tokens": 49, "image_dim": 1280, "text_tokens": 12, "text_dim": 384, "num_classes": 42}
DIM, BATCH = 256, 16
EXTRA_SPECS = ("fluid:layers=1,queries=8",)  # the quick/real presets' scaled-down FLUID

# (reference, symmetric in the two modalities?) — written by hand from each module's docstring. "public
# fusion comparison": the public repository of eight vector fusion modules (teacher/student code) whose
# modules fusionzoo reimplements with their bugs fixed
FACTS: dict[str, tuple[str, str]] = {
    "concat_mlp": ("concatenation baseline (public fusion comparison)", "yes"),
    "cross_attention": ("public fusion comparison", "yes"),
    "early_fusion": ("single-stream transformer; FLUID Table 1 Early-Fusion", "yes"),
    "embracenet": ("Choi & Lee, Information Fusion 2019 (GLAMI-1M baseline)", "yes (image_prob=0.5)"),
    "energy_aware_adaptive": ("public fusion comparison", "yes (equal path costs)"),
    "film": ("Perez et al., AAAI 2018", "no: text modulates image"),
    "fluid": ("FLUID, arXiv 2508.07264 (SoICT 2025)", "yes"),
    "gated": ("gated unit as in the public comparison (GMU-like, Arevalo et al. 2017)", "yes"),
    "image_only": ("unimodal baseline, FLUID Table 2", "no: image only"),
    "late_fusion": ("decision-level fusion (Snoek et al., ACM MM 2005)", "yes"),
    "lmf": ("Liu et al., ACL 2018 (registry/lmf plugin)", "yes"),
    "mbt": ("Nagrani et al., NeurIPS 2021", "yes"),
    "modality_dropout": ("public fusion comparison; ModDrop, Neverova et al. 2016", "yes"),
    "mult": ("Tsai et al., ACL 2019", "yes"),
    "qformer": ("BLIP-2 Q-Former (Li et al., ICML 2023); FLUID Table 1 Modified BLIP-2", "yes"),
    "shomr": ("public fusion comparison", "yes"),
    "text_only": ("unimodal baseline, FLUID Table 2", "no: text only"),
    "tfn": ("Zadeh et al., EMNLP 2017", "yes"),
    "transformer_concat": ("public fusion comparison", "yes"),
}


def measure(spec: str) -> dict[str, float]:
    torch.manual_seed(0)
    model = FusionModel(
        spec,
        "mlp",
        image_dim=SHAPE["image_dim"],
        text_dim=SHAPE["text_dim"],
        dim=DIM,
        num_classes=SHAPE["num_classes"],
        num_image_tokens=SHAPE["image_tokens"],
    ).eval()
    ctx = ModelContext(model=model, batch_size=BATCH, **SHAPE)
    row: dict[str, float] = {}
    for metric in ("params", "gflops_forward"):
        row.update(registry.create("metric", metric).compute(ctx))
    seen: dict[str, int] = {}
    hook = model.fusion.register_forward_hook(lambda _m, _i, out: seen.update(tokens=out.tokens.shape[1]))
    with torch.no_grad():
        model.forward_batch(ctx.batch(1))
    hook.remove()
    row["tokens"] = seen["tokens"]
    row["fusion_params"] = count_parameters(model.fusion)
    return row


def main() -> None:
    print(
        f"D = {DIM}; image {SHAPE['image_tokens']} × {SHAPE['image_dim']}, text {SHAPE['text_tokens']} × "
        f"{SHAPE['text_dim']}, {SHAPE['num_classes']} classes, mlp head; torch {torch.__version__}\n"
    )
    print(
        "| fusion | reference | symmetric | tokens out | params (model) | fusion params | GFLOPs fwd / sample |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for spec in [*registry.list_fusions(), *EXTRA_SPECS]:
        name = registry.parse_spec(spec)[0]
        reference, symmetric = FACTS.get(name, ("?", "?"))
        row = measure(spec)
        print(
            f"| `{spec}` | {reference} | {symmetric} | {int(row['tokens'])} | {row['params'] / 1e6:.3f}M | "
            f"{row['fusion_params'] / 1e6:.3f}M | {row['gflops_forward']:.4f} |"
        )


if __name__ == "__main__":
    main()
