"""Wall time of the quick preset with ``--jobs 1`` vs ``--jobs N|auto`` (default auto), idle and busy.

    python benchmarks/perf/jobs_speedup.py [--jobs auto] [--repeats 3] [--epochs 15] [--data-dir DIR]
                                           [--conditions idle,busy]

Each repetition runs ``fusionzoo bench`` (the quick preset: fluid, film, concat_mlp + the unimodal
baselines, 3 seeds = 15 runs) as a subprocess into a fresh runs directory, once with ``--jobs 1`` and
once with ``--jobs N``, alternating which goes first, on already-cached features (a warm-up run fills
the cache first). Under the condition ``busy`` another process spins on one core (niced, as a
colleague's job would be) for the whole pair. It prints, per repetition, wall / user / sys seconds of
the whole command (its children included), the load average before each run and the plan the pool
chose, then per condition the median wall ratio ``--jobs N`` / ``--jobs 1`` (below 1: faster; ``auto``
must never be above 1 beyond noise), and checks that both tables hold the same metric values (bit for
bit).
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


def spinner() -> subprocess.Popen:
    """Another process keeping one core busy (niced by 10) until killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=lambda: os.nice(10))


def plan_line(out: Path) -> str:
    """The pool's plan line of a finished bench (empty when it ran in one process)."""
    log = out / "bench.log"
    if not log.exists():
        return ""
    lines = [line for line in log.read_text().splitlines() if "pool" in line and "at once" in line]
    return lines[0].strip() if lines else "one process (no pool)"


def run_bench(args: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "fusionzoo", "bench", *args], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = Path(args[args.index("--out") + 1])
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.log").write_text(done.stdout + done.stderr)
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
    parser.add_argument("--jobs", default="auto", help="N or auto, compared with --jobs 1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's 15 epochs")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--conditions", default="idle,busy", help="idle and/or busy (one core spun)")
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
    other = str(args.jobs)
    ratios: dict[str, list[float]] = {}
    for condition in [c.strip() for c in args.conditions.split(",") if c.strip()]:
        times: dict[str, list[tuple[float, float, float]]] = {"1": [], other: []}
        busy = spinner() if condition == "busy" else None
        try:
            time.sleep(2.0 if busy else 0.0)  # let the spinner show up in /proc/stat
            for repeat in range(args.repeats):
                order = ("1", other) if repeat % 2 == 0 else (other, "1")
                for jobs in order:
                    load = os.getloadavg()[0]
                    out = root / f"{condition}-r{repeat}-j{jobs}"
                    wall, user, system = run_bench([*common, "--jobs", jobs, "--out", str(out)], env)
                    times[jobs].append((wall, user, system))
                    print(
                        f"{condition} repeat {repeat} --jobs {jobs}: wall {wall:6.1f} s, user {user:6.1f} s, "
                        f"sys {system:5.1f} s (load average before: {load:.1f}); {plan_line(out)}",
                        flush=True,
                    )
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
        pairs = [b[0] / a[0] for a, b in zip(times["1"], times[other], strict=True)]
        ratios[condition] = pairs
        serial = statistics.median(t[0] for t in times["1"])
        parallel = statistics.median(t[0] for t in times[other])
        print(
            f"{condition}: median wall --jobs 1 {serial:.1f} s, --jobs {other} {parallel:.1f} s -> "
            f"ratio {parallel / serial:.2f} (per pair: {', '.join(f'{r:.2f}' for r in pairs)})",
            flush=True,
        )
        a = pd.read_parquet(root / f"{condition}-r0-j1" / "results.parquet").set_index("run_id").sort_index()
        b = pd.read_parquet(root / f"{condition}-r0-j{other}" / "results.parquet")
        b = b.set_index("run_id").sort_index()
        metrics = [c for c in a.columns if c.startswith(("test_", "val_"))]
        same = a.index.equals(b.index) and a[metrics].fillna(-1).equals(b[metrics].fillna(-1))
        print(
            f"{condition}: --jobs 1 and --jobs {other} tables identical: {same} ({len(a)} runs, "
            f"{len(metrics)} metric columns)"
        )
    print(
        "wall ratio --jobs "
        + other
        + " / --jobs 1 (median): "
        + ", ".join(f"{c} {statistics.median(r):.2f}" for c, r in ratios.items())
    )


if __name__ == "__main__":
    main()
