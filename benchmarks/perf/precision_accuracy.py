"""Accuracy and wall time of ``--precision bf16`` against ``--precision fp32``, measured in one run.

    python benchmarks/perf/precision_accuracy.py                                # the README main job
    python benchmarks/perf/precision_accuracy.py --out /tmp/p -- --dataset glami1m \\
        --data-dir $(dirname $FUSIONZOO_CHECKSET) --image-encoder ... --text-encoder ...   # the check set

Runs the same ``fusionzoo bench`` command (default: the README main job, ``--fusions
fluid,film,concat_mlp`` on the quick preset, 3 seeds + the unimodal baselines; arguments after ``--``
replace the fusions) as subprocesses with ``--precision fp32`` and ``--precision bf16``, ``--jobs 1``,
into two runs directories (the pre-encoded features are shared; a first bench fills the cache),
alternating which precision goes first over ``--repeats``. Then, per fusion × head, it prints the
metric's mean ± 95 % t-interval over seeds for each precision, the paired difference bf16 − fp32 over
seeds with its 95 % interval, and whether the bf16 mean lies inside the fp32 interval ("inside CI"),
plus the summed training time of each precision and their ratio. The ``auto`` rule of
:mod:`fusionzoo.train.precision` is decided on these tables (docs/scale.md, "bf16").
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def run_bench(args: list[str], out: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "fusionzoo", "bench", *args, "--out", str(out), "--jobs", "1"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"},
    )
    if done.returncode != 0:
        raise SystemExit(
            f"fusionzoo bench {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return time.perf_counter() - started


def compare(fp32: object, bf16: object, metric: str) -> list[str]:
    """One line per fusion × head: both means ± CI, the paired difference and its CI."""
    from fusionzoo.results.stats import t_interval

    lines = []
    for (fusion, head), a in fp32.groupby(["fusion", "head"]):  # type: ignore[attr-defined]
        b = bf16[(bf16["fusion"] == fusion) & (bf16["head"] == head)]  # type: ignore[index]
        pairs = a.merge(b, on="seed", suffixes=("_a", "_b"))
        x, y = pairs[f"{metric}_a"].to_numpy(float), pairs[f"{metric}_b"].to_numpy(float)
        if len(pairs) == 0:
            continue
        (ma, ha), (mb, hb), (md, hd) = t_interval(x), t_interval(y), t_interval(y - x)
        inside = "n/a" if ha != ha else ("yes" if abs(mb - ma) <= ha else "no")  # NaN: one seed
        lines.append(
            f"{fusion:28} {head:6} {len(pairs):5} {ma * 100:7.2f} ± {ha * 100:5.2f} {mb * 100:7.2f} ± {hb * 100:5.2f}"
            f" {md * 100:+7.2f} [{(md - hd) * 100:+6.2f}, {(md + hd) * 100:+6.2f}] {inside:>9}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=None, help="folder for the runs directories [default: a temp dir]")
    parser.add_argument("--metric", default="test_accuracy")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--tables-only", action="store_true", help="compare the runs already in --out/{fp32,bf16}-0"
    )
    parser.add_argument(
        "bench_args", nargs="*", help="fusionzoo bench arguments [default: the README main job]"
    )
    args = parser.parse_args()
    import tempfile

    import pandas as pd

    root = Path(args.out or tempfile.mkdtemp(prefix="fz-precision-"))
    bench_args = args.bench_args or []
    if not any(a.startswith("--fusions") for a in bench_args):
        bench_args = ["--fusions", "fluid,film,concat_mlp", *bench_args]
    if args.tables_only:
        args.repeats = 0
    warm = [a for i, a in enumerate(bench_args) if "--fusions" not in (a.split("=")[0], bench_args[i - 1])]
    if args.repeats:
        run_bench(
            [*warm, "--fusions", "concat_mlp", "--seeds", "0", "--epochs", "1"], root / "warm-up"
        )  # cache
    walls: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for repeat in range(args.repeats):
        order = ["fp32", "bf16"] if repeat % 2 == 0 else ["bf16", "fp32"]
        for precision in order:
            out = root / f"{precision}-{repeat}"
            load = os.getloadavg()[0]
            wall = run_bench([*bench_args, "--precision", precision], out)
            walls[precision].append(wall)
            print(
                f"repeat {repeat} {precision}: {wall:.1f} s wall (load average {load:.1f} before)", flush=True
            )
    tables = {p: pd.read_parquet(root / f"{p}-0" / "results.parquet") for p in walls}
    tables = {p: t[t["status"] == "ok"] for p, t in tables.items()}
    keys = ["fusion", "head", "seed"]
    both = tables["fp32"][keys].merge(tables["bf16"][keys])  # the runs both precisions finished
    train = {p: float(t.merge(both)["train_time"].sum()) for p, t in tables.items()}
    print(f"\n{args.metric} (%) over seeds: fp32 vs bf16; diff = bf16 - fp32 paired by seed, 95% t-interval")
    print(
        f"{'fusion':28} {'head':6} {'seeds':>5} {'fp32':>15} {'bf16':>15} {'diff [95% CI]':>24} {'inside CI':>9}"
    )
    for line in compare(tables["fp32"], tables["bf16"], args.metric):
        print(line)
    if train:
        print(f"\ntraining time summed over the {len(both)} runs both finished: fp32 {train['fp32']:.1f} s, bf16 {train['bf16']:.1f} s, "
              f"ratio bf16/fp32 {train['bf16'] / max(train['fp32'], 1e-9):.2f}")  # fmt: skip
    if args.repeats:
        ratio = np.median(walls["bf16"]) / np.median(walls["fp32"])
        print(f"wall (whole command, median of {args.repeats}): ratio bf16/fp32 {ratio:.2f}")


if __name__ == "__main__":
    main()
