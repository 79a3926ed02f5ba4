"""Wall time of the quick preset's grid with batched seeds (the default) vs ``--no-batch-seeds``.

    python benchmarks/perf/batched_seeds.py [--repeats 2] [--epochs N] [--fusions fluid,film,concat_mlp]

The README main job (``fusionzoo bench --fusions fluid,film,concat_mlp``: the quick preset, 3 seeds,
plus the unimodal baselines = 15 runs) on already-cached features (a warm-up run fills the cache),
``--jobs 1`` both ways so only the execution of the seeds differs. Each repetition runs both as
subprocesses into fresh runs directories, alternating which goes first, and prints wall seconds and the
load average before each; then the median wall ratio batched / one at a time, how each configuration
trained (the ``execution`` column), the largest metric difference between the two tables (same run
ids: the mode is not part of the identity) and both leaderboards, so their conclusions can be compared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_bench(args: list[str]) -> tuple[float, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "160"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "fusionzoo", "bench", *args], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"fusionzoo bench {' '.join(args)} exited with {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return wall, done.stdout


def leaderboard(output: str) -> str:
    start = output.find("leaderboard ·")
    end = output.find("ran ", start)
    return output[start:end].rstrip() if start >= 0 else output[-2000:]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's 15 epochs")
    parser.add_argument("--fusions", default="fluid,film,concat_mlp")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    import pandas as pd

    root = Path(tempfile.mkdtemp(prefix="fz-batched-"))
    common = ["--fusions", args.fusions, "--jobs", "1"]
    if args.data_dir:  # else the default data folder and feature cache
        common += ["--data-dir", args.data_dir]
    if args.epochs:
        common += ["--epochs", str(args.epochs)]
    run_bench([*common, "--seeds", "0", "--epochs", "1", "--out", str(root / "warmup")])  # fills the cache
    modes = {"batched": [], "one at a time": ["--no-batch-seeds"]}
    walls: dict[str, list[float]] = {mode: [] for mode in modes}
    outputs: dict[str, str] = {}
    for repeat in range(args.repeats):
        order = list(modes) if repeat % 2 == 0 else list(modes)[::-1]
        for mode in order:
            load = os.getloadavg()[0]
            out = root / f"{mode.replace(' ', '_')}-{repeat}"
            wall, outputs[mode] = run_bench([*common, *modes[mode], "--out", str(out)])
            walls[mode].append(wall)
            print(
                f"repeat {repeat + 1} {mode:>13}: {wall:7.1f} s wall (load average before: {load:.1f})",
                flush=True,
            )
    ratio = statistics.median(b / s for b, s in zip(walls["batched"], walls["one at a time"], strict=True))
    print(f"\nmedian wall ratio batched / one at a time: {ratio:.2f} ({os.cpu_count()} CPUs)")

    last = args.repeats - 1
    tables = {
        mode: pd.read_parquet(root / f"{mode.replace(' ', '_')}-{last}" / "results.parquet").set_index(
            "run_id"
        )
        for mode in modes
    }
    batched, alone = tables["batched"], tables["one at a time"]
    print("\nhow each configuration trained (batched run):")
    for (fusion, execution), rows in batched.groupby(["fusion", "execution"]):
        print(f"  {fusion}: {execution} ({len(rows)} runs)")
    same = sorted(set(batched.index) & set(alone.index))
    print(f"\nrun ids shared by both tables: {len(same)} of {len(batched)}")
    for column in ("test_accuracy", "test_macro_f1", "val_accuracy"):
        diff = (batched.loc[same, column] - alone.loc[same, column]).abs().max()
        print(f"  largest |batched − one at a time| {column}: {diff:.2e}")
    for mode in modes:
        print(f"\n=== {mode} ===\n{leaderboard(outputs[mode])}")


if __name__ == "__main__":
    main()
