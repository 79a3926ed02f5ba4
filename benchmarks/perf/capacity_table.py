"""Parameter counts at D = 768 (GLAMI shapes) of every fusion at its defaults vs FLUID's Table-3 config,
and the capacity-matched specs of the Table-1 baselines (``fusionzoo.bench.capacity``).

    python benchmarks/perf/capacity_table.py
"""

from __future__ import annotations

from fusionzoo import registry
from fusionzoo.bench.capacity import match_capacity, model_parameters

SHAPES = {"image_dim": 768, "text_dim": 768, "dim": 768, "num_classes": 191, "num_image_tokens": 197}
FLUID = "fluid:layers=6,heads=8,ffn_mult=4.0,queries=32"


def main() -> None:
    target = model_parameters(FLUID, "moe", **SHAPES)
    print("| fusion (defaults) | head | params | / FLUID |\n| --- | --- | --- | --- |")
    print(f"| `{FLUID}` | moe | {target / 1e6:.1f}M | 1.00 |")
    for name in registry.list_fusions():
        head = str(getattr(registry.get_fusion_class(name), "default_head", "mlp"))
        params = model_parameters(name, head, **SHAPES)
        print(f"| `{name}` | {head} | {params / 1e6:.1f}M | {params / target:.2f} |")
    print("\n| baseline | capacity-matched spec | head | params | / FLUID |\n| --- | --- | --- | --- | --- |")
    for name in ("early_fusion", "cross_attention", "qformer", "concat_mlp"):
        match = match_capacity(name, target, **SHAPES)
        print(
            f"| `{name}` | `{match.fusion}` | {match.head} | {match.params / 1e6:.1f}M | {match.ratio:.2f} |"
        )


if __name__ == "__main__":
    main()
