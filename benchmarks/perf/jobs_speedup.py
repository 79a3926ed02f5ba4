"""Wall time of the quick preset with ``--jobs 1`` vs ``--jobs N`` (default 2), measured in one run.

    python benchmarks/perf/jobs_speedup.py [--jobs 2] [--repeats 3] [--epochs 15] [--data-dir DIR]

Each repetition runs ``fusionzoo bench`` (the quick preset: fluid, film, concat_mlp + the unimodal
baselines, 3 seeds = 15 runs) as a subprocess into a fresh runs directory, once with ``--jobs 1`` and
once with ``--jobs N``, alternating which goes first, on already-cached features (a warm-up run fills
the cache first). It prints, per repetition, wall / user / sys seconds of the whole command (its
children included) and the load average before each run, then the median wall ratio, and checks that
both tables hold the same metric values (bit for bit).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_bench(args: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "fusionzoo", "bench", *args], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(
            f"fusionzoo bench {' '.join(args)} exited with {done.returncode}:\n"
            + done.stdout[-3000:]
            + done.stderr[-3000:]
        )
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's 15 epochs")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    import pandas as pd

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    root = Path(tempfile.mkdtemp(prefix="fz-jobs-"))
    common = ["--fusions", "fluid,film,concat_mlp"]
    if args.data_dir:
        common += ["--data-dir", args.data_dir]
    if args.epochs:
        common += ["--epochs", str(args.epochs)]
    run_bench(
        [*common, "--seeds", "0", "--epochs", "1", "--out", str(root / "warmup")], env
    )  # fills the cache
    print(f"{os.cpu_count()} CPUs, usable {len(os.sched_getaffinity(0))}; runs in {root}")
    times: dict[int, list[tuple[float, float, float]]] = {1: [], args.jobs: []}
    for repeat in range(args.repeats):
        order = (1, args.jobs) if repeat % 2 == 0 else (args.jobs, 1)
        for jobs in order:
            load = os.getloadavg()[0]
            wall, user, system = run_bench(
                [*common, "--jobs", str(jobs), "--out", str(root / f"r{repeat}-j{jobs}")], env
            )
            times[jobs].append((wall, user, system))
            print(
                f"repeat {repeat} --jobs {jobs}: wall {wall:6.1f} s, user {user:6.1f} s, sys {system:5.1f} s "
                f"(load average before: {load:.1f})",
                flush=True,
            )
    serial = statistics.median(t[0] for t in times[1])
    parallel = statistics.median(t[0] for t in times[args.jobs])
    print(
        f"median wall: --jobs 1 {serial:.1f} s, --jobs {args.jobs} {parallel:.1f} s -> {serial / parallel:.2f}x"
    )
    per_pair = [a[0] / b[0] for a, b in zip(times[1], times[args.jobs], strict=True)]
    print("per-repetition speed-ups: " + ", ".join(f"{r:.2f}x" for r in per_pair))
    a = pd.read_parquet(root / "r0-j1" / "results.parquet").set_index("run_id").sort_index()
    b = pd.read_parquet(root / f"r0-j{args.jobs}" / "results.parquet").set_index("run_id").sort_index()
    metrics = [c for c in a.columns if c.startswith(("test_", "val_"))]
    same = a.index.equals(b.index) and a[metrics].fillna(-1).equals(b[metrics].fillna(-1))
    print(
        f"--jobs 1 and --jobs {args.jobs} tables identical: {same} ({len(a)} runs, {len(metrics)} metric columns)"
    )


if __name__ == "__main__":
    main()
