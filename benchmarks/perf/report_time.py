"""What ``--report`` adds to the README's main job: the bench's wall time, then the report's, in one run.

    python benchmarks/perf/report_time.py [--fusions fluid,film,concat_mlp] [--seeds 0,1,2] [--repeats 3]

1. ``fusionzoo bench --fusions ... --out TMP`` in a subprocess (a fresh runs directory: every run
   trains; the embedded dataset's features come from the cache when they are there), timed;
2. ``fusionzoo report TMP`` in a fresh subprocess ``--repeats`` times (imports included), timed;
3. prints both, the median report time, the ratio report / bench, and the report's size.

The figures in docs/report.md come from this script.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fusions", default="fluid,film,concat_mlp")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "fusionzoo.cli"]
    with tempfile.TemporaryDirectory(prefix="fusionzoo-report-time-") as tmp:
        runs = Path(tmp) / "runs"
        bench = timed([*cli, "bench", "--fusions", args.fusions, "--seeds", args.seeds, "--out", str(runs)])
        reports = [timed([*cli, "report", str(runs)]) for _ in range(args.repeats)]
        size = (runs / "report.html").stat().st_size
    report = statistics.median(reports)
    print(f"bench (--fusions {args.fusions} --seeds {args.seeds}): {bench:.1f} s")
    print(f"report: median {report:.1f} s of {', '.join(f'{r:.1f}' for r in reports)} s; {size / 1e6:.1f} MB")
    print(f"report / bench = {report / bench:.3f}")


if __name__ == "__main__":
    main()
