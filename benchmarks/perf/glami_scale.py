"""GLAMI-1M scale on this machine: encode + a 3-fusion bench of a large embedded dataset, then the
projection to GLAMI-1M's 1.1M items on one GPU and on eight.

    python benchmarks/perf/glami_scale.py [--rows 100000] [--shared-image 0.8] [--epochs 2]
        [--fusions fluid,film,concat_mlp] [--work DIR] [--images DIR]

1. ``fusionzoo encode`` of the embedded dataset at ``--rows`` rows where a ``--shared-image`` fraction
   of the listings re-use another listing's image (0.8: ~5 items per image; GLAMI-1M has ~9), under
   ``/usr/bin/time``: wall time (data generation included), peak RSS, the encoder's own items/s per
   split, and the cache size on disk (every entry folder).
2. ``fusionzoo bench`` of ``--fusions`` (the quick preset's settings, one seed, ``--epochs`` epochs,
   ``--jobs 1``) on those features: wall, peak RSS, mean epoch time per fusion (``history.parquet``),
   test accuracy.
3. The projection to 1.1M items (every assumption printed with it): cache size of ViT-B/16 + mBERT
   tokens (fp16, one copy per distinct image and text), encode time from public backbone throughput,
   the JPEG decode cores that throughput needs (measured here on ``--images`` when given), bytes read
   per training epoch, and FLUID's (Table 1 configuration) training FLOPs per epoch at an assumed
   achieved GPU rate; the CPU figures of step 2 scaled by rows.

Absolute timings depend on the load of the machine: the load average is printed before each step.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

# ------------------------------------------------------------------ assumptions of the projection
GLAMI_ITEMS = 1_100_000
GLAMI_ITEMS_PER_IMAGE = 9  # docs/encoders.md (GLAMI-1M metadata)
GLAMI_TEXT_TOKENS = 70  # mean mBERT tokens per text (docs/encoders.md)
VIT_TOKENS, WIDTH = 197, 768  # ViT-B/16 at 224: 196 patches + [CLS]; mBERT and ViT-B widths
# timm results/benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv: vit_base_patch16_224, AMP, batch 1024
VIT_IMAGES_PER_S = 2787.15
# mBERT-base has ViT-B's depth and width: per-token cost is the same up to attention's (small) quadratic
# part, so sequences/s at 70 tokens ≈ ViT-B images/s × 197 / 70
TEXT_SEQ_PER_S = VIT_IMAGES_PER_S * VIT_TOKENS / GLAMI_TEXT_TOKENS
ACHIEVED_GPU_FLOPS = 100e12  # bf16 training at ~1/3 of an A100's 312 TFLOP/s dense peak (assumed)
FP16 = 2


def load_average() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall s, peak RSS MiB, combined output) of ``command`` under /usr/bin/time."""
    stats = Path(env["SCALE_WORK"]) / "time.txt"
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", "-o", str(stats), *command], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited with {done.returncode}:\n{output[-4000:]}")
    return wall, int(stats.read_text().split()[-1]) / 1024, output


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def decode_rate(images: Path, limit: int = 300) -> float:
    """JPEG decode + resize + crop + normalise to 224² per second on one core (timm's eval transform)."""
    import timm.data
    import torch
    from PIL import Image

    torch.set_num_threads(1)
    files = sorted(p for p in images.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:limit]
    if not files:
        raise SystemExit(f"no images under {images}")
    transform = timm.data.create_transform(224, is_training=False)
    started = time.perf_counter()
    for path in files:
        with Image.open(path) as image:
            transform(image.convert("RGB"))
    return len(files) / (time.perf_counter() - started)


def photo_like_jpegs(folder: Path, count: int = 200) -> Path:
    """``count`` 228 × 298 JPEGs (GLAMI-1M's image size) of blurred colour noise at quality 90: harder to
    decode than flat product shots, a pessimistic stand-in for the real photos (none ship offline)."""
    import numpy as np
    from PIL import Image, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 256, (298, 228, 3), dtype=np.uint8)
        image = Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(2))
        image.save(folder / f"{i:04d}.jpg", quality=90)
    return folder


def fluid_table1_flops_per_row() -> float:
    """Training FLOPs per row of FLUID as in the glami1m_table1 preset, at GLAMI-1M's token shapes."""
    from fusionzoo.metrics._flops import synthetic_batch, train_step_flops
    from fusionzoo.train.config import RunConfig
    from fusionzoo.train.model import FusionModel

    config = RunConfig(fusion="fluid:layers=6,heads=8,ffn_mult=4.0,queries=32", dim=768, batch_size=8)
    model = FusionModel.from_config(
        config, image_dim=WIDTH, text_dim=WIDTH, num_classes=191, num_image_tokens=VIT_TOKENS
    )
    batch = synthetic_batch(8, VIT_TOKENS, WIDTH, GLAMI_TEXT_TOKENS, WIDTH, 191)
    return train_step_flops(model, batch) / 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--shared-image", type=float, default=0.8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--fusions", default="fluid,film,concat_mlp")
    parser.add_argument("--work", type=Path, default=Path("runs/scale"))
    parser.add_argument("--images", type=Path, default=None, help="JPEGs to measure decode speed on")
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "FUSIONZOO_DATA": str(work / "data"), "SCALE_WORK": str(work)}
    env.pop("FUSIONZOO_CACHE", None)
    data = ["--data-option", f"size={args.rows}", "--data-option", f"shared_image={args.shared_image}"]
    fz = [sys.executable, "-m", "fusionzoo"]
    report: dict[str, object] = {"rows": args.rows, "shared_image": args.shared_image, "cpus": os.cpu_count()}

    print(f"encode: {args.rows:,} rows, shared_image={args.shared_image} (load average {load_average()})")
    wall, rss, output = timed([*fz, "encode", "--dataset", "synth", *data], env)
    rates = re.findall(r"\[cache\] (\w+): encoded ([\d,]+) rows \(([\d,]+) distinct images, ([\d,]+) distinct "
                       r"texts\) in ([\d.]+) s \(([\d,]+) items/s\)", output)  # fmt: skip
    if not rates:
        raise SystemExit(
            f"no encode figures in the output (already cached? remove {work / 'data'}):\n{output}"
        )
    splits = {
        s: {"rows": int(r.replace(",", "")), "images": int(i.replace(",", "")), "texts": int(t.replace(",", "")),
            "seconds": float(sec), "items_per_s": int(ips.replace(",", ""))}
        for s, r, i, t, sec, ips in rates
    }  # fmt: skip
    entries = [
        p for p in (work / "data" / "features").iterdir() if p.is_dir() and p.name.startswith("synth-")
    ]
    cache = sum(folder_bytes(p) for p in entries)
    rows = sum(v["rows"] for v in splits.values())
    images = sum(v["images"] for v in splits.values())
    report["encode"] = {"wall_s": wall, "peak_rss_mib": rss, "splits": splits, "cache_bytes": cache}
    print(f"  wall {wall:.0f} s (generation included), peak RSS {rss:.0f} MiB, cache {cache / 1e9:.2f} GB")
    print(f"  {rows:,} rows, {images:,} distinct images ({rows / images:.1f} items per image)")
    for split, v in splits.items():
        print(f"  {split}: {v['rows']:,} rows, {v['images']:,} images, {v['texts']:,} texts in {v['seconds']:.1f} s"
              f" ({v['items_per_s']:,} items/s)")  # fmt: skip

    print(f"bench: {args.fusions}, 1 seed, {args.epochs} epochs, --jobs 1 (load average {load_average()})")
    out = work / "runs"
    bench = [*fz, "bench", "--fusions", args.fusions, "--seeds", "0", "--epochs", str(args.epochs),
             "--no-unimodal", "--jobs", "1", "--out", str(out), *data]  # fmt: skip
    wall, rss, output = timed(bench, env)
    import pandas as pd

    results = pd.read_parquet(out / "results.parquet")
    history = pd.read_parquet(out / "history.parquet")
    per_fusion = {}
    for _, run in results.iterrows():
        epochs = history[history["run_id"] == run["run_id"]]["epoch_time"]
        per_fusion[str(run["fusion"])] = {
            "epoch_s": float(epochs.mean()),
            "train_time_s": float(run["train_time"]),
            "test_accuracy": float(run["test_accuracy"]),
            "params": int(run["params"]),
        }
    report["bench"] = {"wall_s": wall, "peak_rss_mib": rss, "fusions": per_fusion}
    train_rows = splits["train"]["rows"]
    print(f"  wall {wall:.0f} s, peak RSS {rss:.0f} MiB ({train_rows:,} train rows)")
    for fusion, v in per_fusion.items():
        print(f"  {fusion}: {v['epoch_s']:.1f} s/epoch ({train_rows / v['epoch_s']:,.0f} rows/s), test acc "
              f"{v['test_accuracy']:.4f}, {v['params']:,} params")  # fmt: skip

    print("projection to GLAMI-1M (1.1M items), assumptions:")
    distinct = GLAMI_ITEMS / GLAMI_ITEMS_PER_IMAGE
    image_bytes = distinct * VIT_TOKENS * WIDTH * FP16
    text_bytes = GLAMI_ITEMS * GLAMI_TEXT_TOKENS * WIDTH * FP16  # upper bound: every text distinct
    print(f"  {GLAMI_ITEMS_PER_IMAGE} items per image → {distinct:,.0f} distinct images; ≤ {GLAMI_ITEMS:,} "
          f"distinct texts of {GLAMI_TEXT_TOKENS} tokens; fp16 tokens of width {WIDTH}")  # fmt: skip
    print(
        f"  ViT-B/16 {VIT_IMAGES_PER_S:,.0f} images/s per GPU (timm, RTX 4090 AMP); mBERT "
        f"{TEXT_SEQ_PER_S:,.0f} texts/s (same depth/width, × {VIT_TOKENS}/{GLAMI_TEXT_TOKENS} tokens)"
    )
    encode_gpu_s = distinct / VIT_IMAGES_PER_S + GLAMI_ITEMS / TEXT_SEQ_PER_S
    epoch_read = GLAMI_ITEMS * 0.9 * (VIT_TOKENS + GLAMI_TEXT_TOKENS) * WIDTH * FP16
    flops_row = fluid_table1_flops_per_row()
    epoch_gpu_s = flops_row * GLAMI_ITEMS * 0.9 / ACHIEVED_GPU_FLOPS
    projection = {
        "cache_bytes": image_bytes + text_bytes,
        "encode_backbone_s": {"1_gpu": encode_gpu_s, "8_gpus": encode_gpu_s / 8},
        "epoch_read_bytes": epoch_read,
        "fluid_table1_flops_per_row": flops_row,
        "fluid_table1_epoch_s": {"1_gpu": epoch_gpu_s, "8_gpus": epoch_gpu_s / 8},
    }
    print(f"  cache: image {image_bytes / 1e9:.0f} GB + text ≤ {text_bytes / 1e9:.0f} GB")
    print(
        f"  encode (backbones only): {encode_gpu_s / 60:.1f} min on 1 GPU, {encode_gpu_s / 8 / 60:.1f} min on 8"
    )
    folders = {"photo-like 228×298": photo_like_jpegs(work / "photo-like")}
    if args.images is not None:
        folders[str(args.images)] = args.images
    projection["decode_images_per_core_s"] = {}
    for name, folder in folders.items():
        rate = decode_rate(folder)
        projection["decode_images_per_core_s"][name] = rate
        print(f"  JPEG decode + 224² transform: {rate:.0f} images/s per core (measured on {name}) → "
              f"{VIT_IMAGES_PER_S / rate:.0f} cores per GPU to keep ViT-B/16 busy")  # fmt: skip
    print(f"  an epoch (0.9 × 1.1M train rows) reads {epoch_read / 1e9:.0f} GB of tokens (from RAM or disk)")
    print(f"  FLUID (Table 1: D=768, 6 blocks, 32 queries) trains at {flops_row / 1e9:.1f} GFLOP per row → "
          f"{epoch_gpu_s / 60:.1f} min per epoch on 1 GPU at {ACHIEVED_GPU_FLOPS / 1e12:.0f} TFLOP/s achieved, "
          f"{epoch_gpu_s / 8 / 60:.1f} min on 8 (DDP, perfect scaling)")  # fmt: skip
    for gpus in (1, 8):
        print(
            f"  reading that in the {gpus}-GPU epoch time needs {epoch_read / (epoch_gpu_s / gpus) / 1e9:.1f} GB/s"
        )
    scale = GLAMI_ITEMS * 0.9 / train_rows
    for fusion, v in per_fusion.items():
        print(f"  this CPU, {fusion} at the embedded dataset's token shapes: {v['epoch_s'] * scale / 60:.0f} min "
              "per epoch at 0.99M train rows")  # fmt: skip
    report["projection"] = projection
    (work / "scale.json").write_text(json.dumps(report, indent=2))
    print(f"figures: {work / 'scale.json'}")


if __name__ == "__main__":
    main()
