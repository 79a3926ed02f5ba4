"""Hand-built results tables of a runs directory, for the report tests (no training).

Every table follows the agreed schemas (results, history, predictions, classes, robustness,
efficiency, diagnostics, provenance, an Optuna study) and every metric is computed from the
predictions written here, so the report's numbers can be checked against an independent computation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from fusionzoo.evaluation.inputs import record_shapes
from fusionzoo.metrics.class_buckets import BUCKETS, class_buckets
from fusionzoo.results.store import ResultsStore, config_id_of, run_id_of, write_table

NUM_CLASSES = 6
N_TEST = 120
FINGERPRINT = "fp-hand-built"
# fusion -> (head, per-seed test error rates); fluid is clearly best, film and concat_mlp close
CONFIGS = {
    "fluid:layers=1,queries=8": ("moe", (0.05, 0.06, 0.055)),
    "film": ("mlp", (0.12, 0.15, 0.10)),
    "concat_mlp": ("mlp", (0.11, 0.13, 0.12)),
    "image_only": ("mlp", (0.55, 0.56, 0.54)),
}
SEEDS = (0, 1, 2)
GEOS = ("cz", "sk", "hu")
LEVELS = (0.0, 0.5, 1.0)
PROTOCOLS = ("missing_image:imputation=mask", "missing_text:imputation=mask")
TRAIN_COUNTS = np.array([60, 40, 30, 20, 10, 5])


def identity(fusion: str, head: str) -> dict:
    parts = {
        "dataset": "synth",
        "data_fingerprint": FINGERPRINT,
        "fusion": fusion,
        "head": head,
        "config_hash": "h-" + fusion.split(":")[0],
        "semantics": "1",
        "plugins": "",
        "code": "",
        "regime": "",
    }
    return {**parts, "config_id": config_id_of(parts)}


def labels() -> np.ndarray:
    return np.random.default_rng(7).integers(0, NUM_CLASSES, N_TEST).astype(np.int64)


def predictions_for(truth: np.ndarray, error: float, seed: int) -> np.ndarray:
    """Wrong on a fixed share of rows (the same rows for all fusions + a seed-dependent part)."""
    rng = np.random.default_rng(100 + seed)
    wrong = np.argsort(rng.random(len(truth)))[: int(round(error * len(truth)))]
    out = truth.copy()
    out[wrong] = (truth[wrong] + 1 + rng.integers(0, NUM_CLASSES - 1, len(wrong))) % NUM_CLASSES
    return out


def build_runs_dir(root: Path, optional: bool = True, optuna_study: bool = True) -> ResultsStore:
    """A runs directory with results, history and predictions (and, with ``optional``, every other table)."""
    store = ResultsStore(root)
    truth = labels()
    is_human = np.random.default_rng(3).random(N_TEST) < 0.5
    geo = np.array(GEOS)[np.arange(N_TEST) % len(GEOS)]
    for fusion, (head, errors) in CONFIGS.items():
        ident = identity(fusion, head)
        for seed, error in zip(SEEDS, errors, strict=True):
            pred = predictions_for(truth, error, seed)
            correct = pred == truth
            row = {
                **ident,
                "seed": seed,
                "run_id": run_id_of(ident["config_id"], seed),
                "status": "ok",
                "train_time": 1.0 + seed,
                "params": 1000 * (len(fusion) + 1),
                "config": json.dumps({"dim": 16, "batch_size": 32, "metric": "accuracy", "epochs": 4}),
                "test_accuracy": float(correct.mean()),
                "test_macro_f1": float(f1_score(truth, pred, labels=range(NUM_CLASSES), average="macro")),
                "test_acc_human": float(correct[is_human].mean()),
                **{f"test_acc_geo_{g}": float(correct[geo == g].mean()) for g in GEOS},
                "val_accuracy": float(correct.mean()) - 0.02,
            }
            history = [
                {
                    "epoch": float(e),
                    "lr": 1e-3,
                    "train_loss": 2.0 / e + error,
                    "val_accuracy": 0.5 + 0.1 * e - error,
                }
                for e in range(1, 5)
            ]
            diagnostics = _diagnostics(fusion, seed) if optional else None
            store.record(row, history=history, predictions=pred, labels=truth, diagnostics=diagnostics)
    # a diverged run: shown as a failure, never in a mean
    ident = identity("film", "mlp")
    store.record(
        {
            **ident,
            "seed": 3,
            "run_id": run_id_of(ident["config_id"], 3),
            "status": "diverged",
            "error": "loss became nan at epoch 2, step 3",
            "config": json.dumps({"dim": 16, "batch_size": 32, "metric": "accuracy"}),
        }
    )
    if optional:
        write_optional_tables(store)
        if optuna_study:
            write_study(root / "optuna.db")
    return store


def _diagnostics(fusion: str, seed: int) -> list[dict]:
    rows = []
    if fusion.startswith("fluid"):
        counts = np.random.default_rng(seed).integers(0, 50, 20)
        rows += [
            {
                "name": "fusion.gate",
                "kind": "histogram",
                "bin": i,
                "edge_low": i / 20,
                "edge_high": (i + 1) / 20,
                "value": float(c),
            }
            for i, c in enumerate(counts)
        ]
        rows += [
            {
                "name": "head.expert_counts",
                "kind": "counts",
                "bin": i,
                "edge_low": np.nan,
                "edge_high": np.nan,
                "value": float(v),
            }
            for i, v in enumerate((40 + seed, 30, 20, 10))
        ]
    return rows


def robustness_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """``robustness.parquet`` rows for the ok runs of ``runs``: two protocols × :data:`LEVELS`; level 0 =
    the clean test accuracy; each fusion loses a made-up share per level (image_only only without images)."""
    drop = {"fluid": (0.1, 0.05), "film": (0.3, 0.15), "concat_mlp": (0.2, 0.1), "image_only": (0.8, 0.0)}
    rows = []
    for _, run in runs[runs["status"] == "ok"].iterrows():
        losses = drop.get(str(run["fusion"]).split(":")[0], (0.25, 0.1))
        for protocol, loss in zip(PROTOCOLS, losses, strict=True):
            for level in LEVELS:
                accuracy = float(run["test_accuracy"]) * (1 - loss * level) - 0.001 * int(run["seed"]) * level
                rows.append(
                    {
                        "run_id": run["run_id"],
                        "config_id": run["config_id"],
                        "dataset": run["dataset"],
                        "fusion": run["fusion"],
                        "head": run["head"],
                        "seed": int(run["seed"]),
                        "protocol": protocol,
                        "protocol_name": protocol.split(":")[0],
                        "stage": "test",
                        "level": level,
                        "train_protocol": "",
                        "eval_fingerprint": f"{run['run_id']}-{protocol}-{level}",
                        "test_accuracy": accuracy,
                    }
                )
    return pd.DataFrame(rows)


SHAPES = {"image_tokens": 4, "text_tokens": 6, "image_dim": 16, "text_dim": 12, "num_classes": NUM_CLASSES}


def efficiency_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """One ``efficiency.parquet`` row per (fusion, head) of ``runs`` at :data:`SHAPES` (dim 16, batch size
    32, cpu), keyed like ``fusionzoo eval`` keys them, plus one row of another width that no run has."""
    from fusionzoo.evaluation.runner import efficiency_parts
    from fusionzoo.evaluation.tables import efficiency_key_of
    from fusionzoo.train.config import RunConfig

    rows = []
    for i, ((fusion, _head), group) in enumerate(runs.groupby(["fusion", "head"], sort=True)):
        parts = efficiency_parts(group.iloc[0], RunConfig.from_json(group.iloc[0]["config"]), SHAPES, "cpu")
        rows.append(
            {
                **parts,
                "efficiency_key": efficiency_key_of(parts),
                "params": 1000 + 100 * i,
                "gflops_forward": 0.001 * (1 + i) * (5 if str(fusion).startswith("fluid") else 1),
                "gflops_train_step": 0.1 * (1 + i),
                "latency_p50_ms": 0.5 + 0.2 * i,
                "latency_p95_ms": 0.7 + 0.2 * i,
                "throughput": 10000.0 / (1 + i),
                "peak_memory_mb": 10.0 + i,
                "threads": 1,
                "torch_version": "2.x",
                "measured_at": "2026-01-01T00:00:00+00:00",
            }
        )
    other = {**rows[0], "dim": 999, "gflops_forward": 123.0}  # another width: matches no run
    rows.append({**other, "efficiency_key": efficiency_key_of(other)})
    return pd.DataFrame(rows)


def write_optional_tables(store: ResultsStore) -> None:
    runs = store.load()
    write_table(store.dir / "robustness.parquet", robustness_rows(runs))
    write_table(store.dir / "efficiency.parquet", efficiency_rows(runs))
    record_shapes(store.dir, FINGERPRINT, SHAPES)  # what fusionzoo eval records; maps runs to their key
    store.record_classes(
        "synth",
        FINGERPRINT,
        [f"class-{c}" for c in range(NUM_CLASSES)],
        np.repeat(np.arange(NUM_CLASSES), TRAIN_COUNTS),
        labels(),
    )
    store.record_provenance(
        {
            "invocation": "inv0",
            "started_at": "2026-01-01T00:00:00+00:00",
            "command": "fusionzoo bench --fusions fluid,film,concat_mlp --report",
            "cwd": "/work",
            "fusionzoo_version": "0.1.0",
            "git_commit": "0123456789abcdef",
            "git_dirty": False,
            "python": "3.11.0",
            "platform": "Linux",
            "machine": json.dumps({"hostname": "box", "cores": 2}),
            "packages": json.dumps({"torch": "2.x", "pandas": "3.x"}),
            "environment": json.dumps({"OMP_NUM_THREADS": "1"}),
            "datasets": json.dumps(
                {
                    "synth": {
                        "fingerprint": FINGERPRINT,
                        "image_encoder": {"spec": "timm:tiny"},
                        "text_encoder": {"spec": "hf:tiny"},
                    }
                }
            ),
            "config": "{}",
            "run_ids": json.dumps(list(runs["run_id"].astype(str))),
        }
    )


def write_study(path: Path, trials: int = 6) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="fluid-tune",
        storage=f"sqlite:///{path}",
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    study.optimize(
        lambda t: t.suggest_float("lr", 1e-4, 1e-2, log=True) * 10 + t.suggest_int("layers", 1, 3),
        n_trials=trials,
    )


def expected_buckets() -> np.ndarray:
    return np.array(
        [BUCKETS[b] for b in class_buckets(np.repeat(np.arange(NUM_CLASSES), TRAIN_COUNTS), NUM_CLASSES)]
    )
