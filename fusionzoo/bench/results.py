"""The results of a runs directory: one tidy parquet table, one row per run, written atomically.

    <runs dir>/results.parquet        one row per run (identity, status, every metric, cost, config)
    <runs dir>/history.parquet        one row per (run, epoch): train losses, val metrics, lr, time
    <runs dir>/predictions/<run>.npy  (2, N) int64: test predictions and test labels of each ok run
                                      (McNemar's test needs both, on the same rows)
    <runs dir>/checkpoints/<run>/     best checkpoint (model.safetensors + config.json)

Run identity: ``dataset, fusion, head, seed, config_hash`` → ``run_id`` (a hash of the five).
Columns: the identity, ``run_id``, ``status`` (``ok`` | ``diverged`` | ``failed``), ``error`` (one line)
and ``traceback`` (summary of the last frames) for failed runs, ``test_<metric>`` and
``val_<metric>`` for every metric, ``train_time`` (s), ``params``, ``best_epoch``, ``epochs_run``,
``stopped_early``, ``steps``, ``mode``, ``config`` (the RunConfig as JSON), ``dataset_fingerprint``,
``finished_at`` (UTC ISO), ``fusionzoo_version``, ``schema_version``.

Every write goes to a temporary file that then replaces the table (``os.replace``), under an
advisory lock, so a run killed at any moment leaves either the old or the new table, never a torn one,
and two processes sharing a runs directory do not lose each other's rows. A row is only written when
its run has finished, so a run killed mid-way is simply absent and gets redone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fusionzoo import __version__

__all__ = [
    "IDENTITY",
    "RESULTS_FILE",
    "SCHEMA_VERSION",
    "ResultsError",
    "ResultsSchemaError",
    "ResultsStore",
    "run_id_of",
]

SCHEMA_VERSION = 1
SCHEMA_KEY = b"fusionzoo.results.schema_version"
RESULTS_FILE = "results.parquet"
HISTORY_FILE = "history.parquet"
IDENTITY = ("dataset", "fusion", "head", "seed", "config_hash")
REQUIRED_COLUMNS = (*IDENTITY, "run_id", "status", "error", "train_time", "params", "config")
FINISHED = ("ok", "diverged")


class ResultsError(RuntimeError):
    """The runs directory cannot be used (e.g. it is a file); the message says what to do."""


class ResultsSchemaError(ResultsError):
    """The results file was written by an incompatible version of fusionzoo."""


def run_id_of(dataset: str, fusion: str, head: str, seed: int, config_hash: str) -> str:
    """Stable 16-hex-digit id of a run's identity."""
    payload = json.dumps([dataset, fusion, head, int(seed), config_hash])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _atomic_write_table(frame: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[SCHEMA_KEY] = str(SCHEMA_VERSION).encode()
    table = table.replace_schema_metadata(metadata)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_save_npy(array: np.ndarray, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    try:
        np.save(tmp, array, allow_pickle=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_results_file(path: str | Path) -> pd.DataFrame:
    """Read a results table, raising :class:`ResultsSchemaError` for an incompatible file."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ResultsSchemaError(
            f"results file {path} is not a readable parquet table ({exc}); move it away or choose another "
            "--out directory"
        ) from exc
    found = (table.schema.metadata or {}).get(SCHEMA_KEY)
    version = found.decode() if found else "none (written before results were versioned)"
    if found is None or found.decode() != str(SCHEMA_VERSION):
        raise ResultsSchemaError(
            f"results file {path} has schema version {version}, but this fusionzoo {__version__} reads and "
            f"writes version {SCHEMA_VERSION}. Rerun into a new --out directory, or move the old directory "
            "away (its runs are not mixed with new ones)."
        )
    frame = table.to_pandas()
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ResultsSchemaError(
            f"results file {path} lacks columns {', '.join(missing)}; it was not written by this version of "
            "fusionzoo. Use a new --out directory."
        )
    return frame


class ResultsStore:
    """The results of one runs directory (created if needed)."""

    def __init__(self, runs_dir: str | Path) -> None:
        self.dir = Path(runs_dir)
        if self.dir.exists() and not self.dir.is_dir():
            raise ResultsError(
                f"--out {self.dir} is a file, not a directory; pass a directory for the runs (it is created "
                "if missing)"
            )
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ResultsError(f"cannot create the runs directory {self.dir}: {exc}") from exc
        self.results_path = self.dir / RESULTS_FILE
        self.history_path = self.dir / HISTORY_FILE
        self.predictions_dir = self.dir / "predictions"
        self.checkpoints_dir = self.dir / "checkpoints"
        self.load()  # fail early on an incompatible file

    # --------------------------------------------------------------------------------------- reading
    def load(self) -> pd.DataFrame:
        """The runs table (empty frame with the identity columns when nothing ran yet)."""
        if not self.results_path.exists():
            return pd.DataFrame(columns=list(REQUIRED_COLUMNS))
        return read_results_file(self.results_path)

    def load_history(self) -> pd.DataFrame:
        if not self.history_path.exists():
            return pd.DataFrame(columns=["run_id", "epoch"])
        return read_results_file_loose(self.history_path)

    def finished_ids(self) -> set[str]:
        frame = self.load()
        return set(frame.loc[frame["status"].isin(FINISHED), "run_id"].astype(str))

    def predictions(self, run_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(test predictions, test labels) of a run, or ``None``."""
        path = self.predictions_dir / f"{run_id}.npy"
        if not path.exists():
            return None
        stacked = np.load(path, allow_pickle=False)
        return stacked[0], stacked[1]

    def checkpoint_dir(self, run_id: str) -> Path:
        return self.checkpoints_dir / run_id

    # --------------------------------------------------------------------------------------- writing
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.dir / ".results.lock", "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def record(
        self,
        row: dict[str, Any],
        history: list[dict[str, Any]] | None = None,
        predictions: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> None:
        """Add (or replace, same ``run_id``) one finished run, atomically."""
        missing = [c for c in (*IDENTITY, "run_id", "status") if c not in row]
        if missing:
            raise ValueError(f"result row lacks {', '.join(missing)}")
        row = {
            "error": "",
            "traceback": "",
            "train_time": float("nan"),
            "params": 0,
            "config": "{}",
            **row,
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "fusionzoo_version": __version__,
            "schema_version": SCHEMA_VERSION,
        }
        run_id = str(row["run_id"])
        if predictions is not None and labels is not None:
            self.predictions_dir.mkdir(exist_ok=True)
            stacked = np.stack([np.asarray(predictions, dtype=np.int64), np.asarray(labels, dtype=np.int64)])
            _atomic_save_npy(stacked, self.predictions_dir / f"{run_id}.npy")
        with self._locked():
            if history is not None:
                old = self.load_history()
                old = old[old["run_id"].astype(str) != run_id] if len(old) else old
                new = pd.DataFrame([{"run_id": run_id, **h} for h in history])
                frames = [f for f in (old, new) if len(f)]
                if frames:
                    _atomic_write_table(pd.concat(frames, ignore_index=True), self.history_path)
            table = self.load()
            table = table[table["run_id"].astype(str) != run_id] if len(table) else table
            frames = [f for f in (table, pd.DataFrame([row])) if len(f)]
            merged = pd.concat(frames, ignore_index=True)
            _atomic_write_table(merged, self.results_path)


def read_results_file_loose(path: Path) -> pd.DataFrame:
    """Read the history table (same schema check, no required columns beyond run_id)."""
    table = pq.read_table(path)
    found = (table.schema.metadata or {}).get(SCHEMA_KEY)
    if found is None or found.decode() != str(SCHEMA_VERSION):
        raise ResultsSchemaError(
            f"history file {path} has schema version {found.decode() if found else 'none'}, expected "
            f"{SCHEMA_VERSION}; use a new --out directory"
        )
    return table.to_pandas()
