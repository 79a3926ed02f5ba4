"""Validation-only summary of a runs directory (for choosing settings without looking at test).

    python benchmarks/real/val_table.py RUNS_DIR [--metric val_accuracy] [--with-test]

One row per configuration (``config_id``): fusion, head, the training settings that differ between
the configurations of the directory, mean ± sd over seeds of the validation metric. ``--with-test``
adds the test metric — use it only for the final, already chosen configurations.
"""

from __future__ import annotations

import argparse
import json

import pandas as pd

from fusionzoo.results.store import ResultsStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_dir")
    parser.add_argument("--metric", default="val_accuracy")
    parser.add_argument("--with-test", action="store_true")
    args = parser.parse_args()
    runs = ResultsStore(args.runs_dir).load()
    runs = runs[runs["status"] == "ok"]
    configs = runs["config"].map(json.loads)
    keys = sorted({k for c in configs for k in c} - {"seed", "fusion", "head", "device"})
    varying = [
        k for k in keys if configs.map(lambda c, k=k: json.dumps(c.get(k), sort_keys=True)).nunique() > 1
    ]
    for key in varying:
        runs[key] = configs.map(lambda c, key=key: c.get(key))
    metrics = [args.metric] + ([args.metric.replace("val_", "test_", 1)] if args.with_test else [])
    group = runs.groupby(["config_id", "fusion", "head", *varying], dropna=False)
    table = group[metrics].agg(["mean", "std", "count"])
    table.columns = [" ".join(c) for c in table.columns]
    table = table.reset_index().drop(columns="config_id").sort_values(f"{args.metric} mean", ascending=False)
    with pd.option_context(
        "display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4f}".format
    ):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
