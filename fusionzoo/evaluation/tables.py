"""``robustness.parquet`` and ``efficiency.parquet`` of a runs directory (schema: /work/shared SCHEMAS).

    robustness.parquet  one row per (run_id, protocol, level): run identity, protocol (canonical spec),
                        protocol_name, stage, level, train_protocol, eval_fingerprint, test_<metric>...
    efficiency.parquet  one row per efficiency key (fusion, head, dim, image/text tokens and dims,
                        num_classes, batch_size, device): efficiency_key, params, gflops_forward,
                        gflops_train_step, latency_p50_ms, latency_p95_ms, throughput, peak_memory_mb,
                        threads, torch_version, measured_at
    eval.json           {"reference": the fusion effective robustness is measured against}: written by
                        the last ``fusionzoo eval`` (``[eval] reference``), read by every summary (eval's
                        printout, the leaderboard, the report) so all use one reference

Written like the runs table (:mod:`fusionzoo.results.store`): atomically (temp file + rename) under the
runs directory's lock, with the same schema-version metadata; a row is written only when its work is
complete, so an evaluation killed at any moment leaves complete rows only and a rerun does the rest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pandas as pd

from fusionzoo.io import atomic_write, disk_errors, file_lock
from fusionzoo.results.store import EFFICIENCY_FILE, ROBUSTNESS_FILE, ResultsStore, _table_bytes, read_table

__all__ = [
    "EFFICIENCY_FILE",
    "EFFICIENCY_KEY",
    "EFFICIENCY_SEMANTICS",
    "EVAL_SEMANTICS",
    "ROBUSTNESS_FILE",
    "SETTINGS_FILE",
    "EvalTables",
    "efficiency_key_of",
    "eval_fingerprint_of",
]

SETTINGS_FILE = "eval.json"
# Version of what an evaluation row means (batching, seeding, metric set): part of every row's
# fingerprint, so rows of older code are recomputed, never mixed with new ones.
# 2: the ece metric joined the prediction metrics (rows without test_ece are re-evaluated)
EVAL_SEMANTICS = 2
# Version of what an efficiency row means (how FLOPs and memory are counted): part of the efficiency
# key, so measurements of older code are redone. 2: MoE experts' grouped_mm counted (they counted 0);
# the training-step memory includes the optimiser step and its state.
EFFICIENCY_SEMANTICS = 2
ROBUSTNESS_IDENTITY = ("run_id", "config_id", "dataset", "fusion", "head", "seed")
ROBUSTNESS_REQUIRED = (
    *ROBUSTNESS_IDENTITY,
    "protocol",
    "protocol_name",
    "stage",
    "level",
    "eval_fingerprint",
)
EFFICIENCY_KEY = (
    "fusion",
    "head",
    "dim",
    "image_tokens",
    "text_tokens",
    "image_dim",
    "text_dim",
    "num_classes",
    "batch_size",
    "device",
)


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def eval_fingerprint_of(run_id: str, protocol: str, level: float) -> str:
    """What a robustness row depends on: the run (data, config, seed), the protocol's canonical spec
    (options and seed), the level and :data:`EVAL_SEMANTICS`."""
    return _hash([str(run_id), str(protocol), round(float(level), 9), EVAL_SEMANTICS])


def efficiency_key_of(parts: dict[str, Any]) -> str:
    """Hash of the :data:`EFFICIENCY_KEY` columns (and :data:`EFFICIENCY_SEMANTICS`)."""
    missing = [k for k in EFFICIENCY_KEY if k not in parts]
    if missing:
        raise ValueError(f"efficiency key lacks {', '.join(missing)}")
    return _hash([{k: parts[k] for k in EFFICIENCY_KEY}, EVAL_SEMANTICS, EFFICIENCY_SEMANTICS])


class EvalTables:
    """The evaluation tables next to a runs table (``store``: a :class:`ResultsStore`)."""

    def __init__(self, store: ResultsStore) -> None:
        self.store = store
        self.robustness_path = store.dir / ROBUSTNESS_FILE
        self.efficiency_path = store.dir / EFFICIENCY_FILE
        self.settings_path = store.dir / SETTINGS_FILE

    def reference(self) -> str:
        """The reference fusion of effective robustness: the one the last ``fusionzoo eval`` used."""
        from fusionzoo.robustness import REFERENCE_FUSION

        try:
            return str(json.loads(self.settings_path.read_text())["reference"])
        except (OSError, ValueError, KeyError, TypeError):
            return REFERENCE_FUSION

    def record_reference(self, reference: str) -> None:
        """Record ``reference`` as the runs directory's reference fusion (see :meth:`reference`)."""
        if self.settings_path.exists() and self.reference() == reference:
            return
        with disk_errors(self.settings_path, "the evaluation settings"):
            atomic_write(self.settings_path, json.dumps({"reference": reference}, indent=2) + "\n")

    def robustness(self) -> pd.DataFrame:
        if not self.robustness_path.exists():
            return pd.DataFrame(columns=list(ROBUSTNESS_REQUIRED))
        return read_table(self.robustness_path, ROBUSTNESS_REQUIRED)

    def efficiency(self) -> pd.DataFrame:
        if not self.efficiency_path.exists():
            return pd.DataFrame(columns=[*EFFICIENCY_KEY, "efficiency_key"])
        return read_table(self.efficiency_path, (*EFFICIENCY_KEY, "efficiency_key"))

    def done_fingerprints(self) -> set[str]:
        frame = self.robustness()
        return set(frame["eval_fingerprint"].astype(str)) if len(frame) else set()

    def done_efficiency_keys(self) -> set[str]:
        frame = self.efficiency()
        return set(frame["efficiency_key"].astype(str)) if len(frame) else set()

    def _append(self, path: Any, load: Any, rows: list[dict[str, Any]], key: str) -> None:
        if not rows:
            return
        new = pd.DataFrame(rows)
        with file_lock(self.store.dir / ".results.lock"), disk_errors(path, "an evaluation table"):
            old = load()
            if len(old):
                old = old[~old[key].astype(str).isin(set(new[key].astype(str)))]
            frames = [f for f in (old, new) if len(f)]
            atomic_write(path, _table_bytes(pd.concat(frames, ignore_index=True)))

    def record_robustness(self, rows: list[dict[str, Any]]) -> None:
        """Add (or replace, same ``eval_fingerprint``) complete robustness rows, atomically."""
        self._append(self.robustness_path, self.robustness, rows, "eval_fingerprint")

    def record_efficiency(self, row: dict[str, Any]) -> None:
        """Add (or replace, same ``efficiency_key``) one efficiency row, atomically."""
        stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self._append(self.efficiency_path, self.efficiency, [{**row, "measured_at": stamp}], "efficiency_key")
