"""Accuracy cost of the cache reductions that keep token sequences, on the embedded dataset.

    python benchmarks/perf/reductions_accuracy.py [--image-tokens 4] [--text-max-length 8]
        [--fusions fluid,film,concat_mlp] [--seeds 0,1,2] [--jobs 2] [--work DIR]

Runs the quick preset's bench (``fusionzoo bench``: the embedded dataset, frozen features, 15 epochs,
its fusions at the quick settings, no unimodal baselines) four times into separate runs directories:
all tokens, ``--image-tokens N`` (the patch grid average-pooled to N tokens), ``--text-max-length L``
(texts truncated) and both. Each variant is its own cache entry (its identity covers the reduction).
Prints per fusion and variant: mean ± std test accuracy over the seeds, the difference to all tokens,
and the cache size of the variant's entries; the table is also written to ``<work>/reductions.csv``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path


def cache_bytes(runs: Path) -> int:
    """Bytes of the cache entries the runs of ``runs`` trained on (from the recorded inputs)."""
    from fusionzoo.evaluation.inputs import load_inputs
    from fusionzoo.prepare import materialise, resolve_inputs
    from fusionzoo.results.store import ResultsStore

    store = ResultsStore(runs)
    total = 0
    for fingerprint in set(store.load()["data_fingerprint"].astype(str)):
        inputs = resolve_inputs(load_inputs(runs, fingerprint))
        data = materialise(inputs, progress=False)
        for split in ("train", "val", "test"):
            info = data.split(split).info or {}
            folder = Path(info["cache_path"])
            total += sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-tokens", type=int, default=4)
    parser.add_argument("--text-max-length", type=int, default=8)
    parser.add_argument("--fusions", default="fluid,film,concat_mlp")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--jobs", default="2")
    parser.add_argument("--work", type=Path, default=Path("runs/reductions"))
    args = parser.parse_args()
    work = args.work.resolve()
    env = {**os.environ, "FUSIONZOO_DATA": str(work / "data")}
    env.pop("FUSIONZOO_CACHE", None)
    variants = {
        "all tokens": [],
        f"--image-tokens {args.image_tokens}": ["--image-tokens", str(args.image_tokens)],
        f"--text-max-length {args.text_max_length}": ["--text-max-length", str(args.text_max_length)],
        "both": ["--image-tokens", str(args.image_tokens), "--text-max-length", str(args.text_max_length)],
    }
    import pandas as pd

    rows = []
    for index, (name, flags) in enumerate(variants.items()):
        out = work / f"runs-{index}"
        command = [sys.executable, "-m", "fusionzoo", "bench", "--fusions", args.fusions, "--seeds", args.seeds,
                   "--no-unimodal", "--jobs", args.jobs, "--out", str(out), *flags]  # fmt: skip
        print(f"{name}: {' '.join(command[3:])}", flush=True)
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(
                f"{name} exited with {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
        results = pd.read_parquet(out / "results.parquet")
        size = cache_bytes(out)
        for fusion, part in results.groupby("fusion", sort=False):
            acc = part["test_accuracy"].astype(float)
            rows.append({"variant": name, "fusion": fusion, "seeds": len(acc), "mean": acc.mean(),
                         "std": acc.std(ddof=1), "cache_mb": size / 1e6})  # fmt: skip
    table = pd.DataFrame(rows)
    base = table[table["variant"] == "all tokens"].set_index("fusion")["mean"]
    table["delta_points"] = 100 * (table["mean"] - table["fusion"].map(base))
    table.to_csv(work / "reductions.csv", index=False)
    for _, row in table.iterrows():
        print(f"{row['variant']:<22} {row['fusion']:<26} {100 * row['mean']:6.2f} ± {100 * row['std']:4.2f} "
              f"({row['delta_points']:+.2f} points, n={row['seeds']}), cache {row['cache_mb']:.1f} MB")  # fmt: skip
    print(json.dumps({"csv": str(work / "reductions.csv")}))


if __name__ == "__main__":
    main()
