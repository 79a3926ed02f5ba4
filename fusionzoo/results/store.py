"""The results of a runs directory: tidy parquet tables, one row per run, written atomically.

    <runs dir>/results.parquet        one row per run (identity, status, every metric, cost, config)
    <runs dir>/history.parquet        one row per (run, epoch): train losses, val metrics, lr, time
    <runs dir>/predictions/<run>.npy  (2, N) int64: test predictions and test labels of each ok run
                                      (McNemar's test needs both, on the same rows)
    <runs dir>/checkpoints/<run>/     best checkpoint (model.safetensors + config.json)
    <runs dir>/diagnostics.parquet    per run: summaries of the model's extras on the test split
                                      (run_id, name, kind histogram|counts, bin, edge_low, edge_high,
                                      value), e.g. FLUID's gate values, the MoE head's expert counts
    <runs dir>/classes.parquet        per data fingerprint and class: class_id, class_name,
                                      train_count, test_count, bucket (head|medium|tail as the
                                      trainer's acc_head/medium/tail use them)
    <runs dir>/provenance.parquet     one row per bench invocation: command line, versions, git
                                      commit, machine, data fingerprints and encoders, run ids

**Run identity** = everything that changes what is trained and tested:

    config_id = hash(dataset, data_fingerprint, fusion, head, config_hash, semantics, plugins, code, regime)
    run_id    = hash(config_id, seed)

``data_fingerprint`` covers the dataset files (CSVs, image files by size and mtime), the loader options,
limit and filters, and the encoders (weights identity, preprocessing, token selection); ``config_hash``
every RunConfig field that changes training; ``semantics`` is
:data:`fusionzoo.train.config.TRAINING_SEMANTICS`; ``plugins`` the distribution and version of a
third-party fusion or head; ``code`` a content hash of the source of each plugin the run uses (fusion,
head, train-time protocol, dataset backend; :mod:`fusionzoo.results.identity`), so an edited plugin is a new
run ("not reused: the code of film changed"); ``regime`` the DDP world size and the AMP precision the run
trains in. Tables written before ``code``/``regime`` existed read them as ``""``.

**Data variants** (:mod:`fusionzoo.datasets.specs`): ``split_seed`` (the re-drawn train/validation
split, ``--split-seeds``; −1 = the loader's split) joins the run id, ``run_id = hash(config_id, seed,
split_seed)``, so the runs of one configuration differ by seed and split seed; ``train_fraction``
(``--train-fractions``; 1.0 = every training row) is the ``variant`` part of the configuration,
``config_id = hash(..., variant)``. Both are columns; runs without a variant keep their ids. Runs of one
``config_id`` differ only by seed and are the only runs ever aggregated together; a rerun reuses a
finished run of the same ``run_id`` only.

Other columns: ``status`` (``ok`` | ``diverged`` | ``failed``), ``error`` (one line) and ``traceback``
for failed runs, ``test_<metric>`` / ``val_<metric>`` for every metric column, ``train_time`` (s),
``params``, ``best_epoch``, ``epochs_run``, ``stopped_early``, ``steps``, ``mode``, ``config`` (the
RunConfig as JSON), ``finished_at`` (UTC ISO), ``fusionzoo_version``, ``schema_version``.

Every write goes to a temporary file that then replaces the table, under a cross-process lock, so a
run killed at any moment leaves either the old or the new table, never a torn one, and processes
sharing a runs directory do not lose each other's rows. A row is only written when its run has
finished, so a run killed mid-way is simply absent and gets redone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fusionzoo import __version__
from fusionzoo.errors import InputError
from fusionzoo.io import atomic_write, check_writable, disk_errors, file_lock
from fusionzoo.results.identity import changed_code, regime_changes

__all__ = [
    "FINISHED",
    "IDENTITY",
    "RESULTS_FILE",
    "SCHEMA_VERSION",
    "TABLE_FILES",
    "ResultsError",
    "ResultsSchemaError",
    "ResultsStore",
    "config_id_of",
    "read_table",
    "run_id_of",
    "write_table",
]

SCHEMA_VERSION = 2
SCHEMA_KEY = b"fusionzoo.results.schema_version"
RESULTS_FILE = "results.parquet"
HISTORY_FILE = "history.parquet"
DIAGNOSTICS_FILE = "diagnostics.parquet"
CLASSES_FILE = "classes.parquet"
PROVENANCE_FILE = "provenance.parquet"
ROBUSTNESS_FILE = "robustness.parquet"  # fusionzoo.evaluation.tables writes these two
EFFICIENCY_FILE = "efficiency.parquet"
TABLE_FILES = (
    RESULTS_FILE, HISTORY_FILE, DIAGNOSTICS_FILE, CLASSES_FILE, PROVENANCE_FILE, ROBUSTNESS_FILE, EFFICIENCY_FILE
)  # fmt: skip
# the parts of a configuration's identity, in the order "why was it not reused" names them
CONFIG_PARTS = (
    "dataset", "data_fingerprint", "fusion", "head", "config_hash", "semantics", "plugins", "code", "regime",
)  # fmt: skip
IDENTITY = (*CONFIG_PARTS, "seed", "config_id", "run_id")
VARIANT_COLUMNS = {"variant": "", "split_seed": -1, "train_fraction": 1.0}  # bench.suite data variants
ADDED_PARTS = ("code", "regime")  # identity parts tables written before them lack: read as "" (unknown)
REQUIRED_COLUMNS = (
    *(c for c in IDENTITY if c not in ADDED_PARTS), "status", "error", "train_time", "params", "config",
)  # fmt: skip
FINISHED = ("ok", "diverged")
PREDICTIONS_FIX = (
    "Move it away: the run still counts in every mean; only McNemar's test and the per-class and "
    "confusion sections need its predictions."
)


class ResultsError(InputError, RuntimeError):
    """The runs directory cannot be used (e.g. it is a file); the message says what to do."""


class ResultsSchemaError(ResultsError):
    """The results file was written by an incompatible version of fusionzoo (or is damaged): the runs
    directory itself was the right one, so this is not a usage error (exit code 1)."""

    exit_code = 1


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_id_of(parts: dict[str, Any]) -> str:
    """Stable 16-hex-digit id of a configuration (everything of :data:`CONFIG_PARTS`, no seed, and
    the data ``variant`` when there is one: a training fraction below 1)."""
    missing = [p for p in CONFIG_PARTS if p not in parts]
    if missing:
        raise ValueError(f"configuration identity lacks {', '.join(missing)}")
    payload = {p: parts[p] for p in CONFIG_PARTS}
    if parts.get("variant"):  # absent for the loader's data: those ids stay what they were
        payload["variant"] = parts["variant"]
    return _hash(payload)


def run_id_of(config_id: str, seed: int, split_seed: int | None = None) -> str:
    """Stable 16-hex-digit id of one run: its configuration, its seed and its split seed (when the
    train/validation split was re-drawn, ``bench --split-seeds``)."""
    if split_seed is None:
        return _hash([config_id, int(seed)])
    return _hash([config_id, int(seed), "split", int(split_seed)])


def _table_bytes(frame: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[SCHEMA_KEY] = str(SCHEMA_VERSION).encode()
    buffer = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(metadata), buffer)
    return buffer.getvalue()


def write_table(path: str | Path, frame: pd.DataFrame) -> Path:
    """Write ``frame`` as a results table (parquet with the schema version), atomically."""
    return atomic_write(path, _table_bytes(frame))


def read_table(path: str | Path, required: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a results table, raising :class:`ResultsSchemaError` for an incompatible file.

    The file is read into memory in one ``open`` and parsed from there: a writer replaces tables by
    rename while readers (``status``, ``eval`` beside a running bench) read them, and parquet read by
    path opens the file more than once (size, footer, pages), so it could mix the old file and its
    replacement ("Page was smaller than expected").
    """
    path = Path(path)
    try:
        table = pq.read_table(pa.BufferReader(path.read_bytes()))
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
            f"writes version {SCHEMA_VERSION} (runs are now identified by their data fingerprint too). Rerun "
            "into a new --out directory, or move the old directory away (its runs are not mixed with new ones)."
        )
    frame = table.to_pandas()
    missing = [c for c in required if c not in frame.columns]
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
            check_writable(self.dir, what="runs directory")
        except OSError as exc:
            raise ResultsError(f"{exc.strerror or exc}; pass another --out") from exc
        self.results_path = self.dir / RESULTS_FILE
        self.history_path = self.dir / HISTORY_FILE
        self.predictions_dir = self.dir / "predictions"
        self.checkpoints_dir = self.dir / "checkpoints"
        self.check_tables()  # fail early on an incompatible or damaged file

    def check_tables(self) -> None:
        """Read every table of the runs directory (:data:`TABLE_FILES`) once: an unreadable (truncated,
        damaged) or incompatible one is a :class:`ResultsSchemaError` naming it now, before any work,
        not when the first run that finishes is recorded beside it (and lost)."""
        for name in TABLE_FILES:
            path = self.dir / name
            if path.exists():
                read_table(path, REQUIRED_COLUMNS if name == RESULTS_FILE else ())

    # --------------------------------------------------------------------------------------- reading
    def load(self) -> pd.DataFrame:
        """The runs table (empty frame with the identity columns when nothing ran yet)."""
        if not self.results_path.exists():
            return pd.DataFrame(columns=[*REQUIRED_COLUMNS, *ADDED_PARTS])
        frame = read_table(self.results_path, REQUIRED_COLUMNS)
        for column in ADDED_PARTS:
            if column not in frame.columns:
                frame[column] = ""
        for column, default in VARIANT_COLUMNS.items():  # runs on the loader's data (no variant)
            frame[column] = frame[column].fillna(default) if column in frame.columns else default
        return frame

    def load_history(self) -> pd.DataFrame:
        if not self.history_path.exists():
            return pd.DataFrame(columns=["run_id", "epoch"])
        return read_table(self.history_path, ("run_id",))

    def finished_ids(self) -> set[str]:
        frame = self.load()
        return set(frame.loc[frame["status"].isin(FINISHED), "run_id"].astype(str))

    def predictions(self, run_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(test predictions, test labels) of a run, or ``None``; a file that is not a ``(2, N)`` integer
        array (corrupt, truncated, another format) is a :class:`ResultsSchemaError` naming it."""
        path = self.predictions_dir / f"{run_id}.npy"
        if not path.exists():
            return None
        try:
            stacked = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:  # numpy's message may advise allow_pickle: never
            reason = "empty" if isinstance(exc, EOFError) else "truncated" if "EOF" in str(exc) else "corrupt"
            raise ResultsSchemaError(
                f"predictions file {path} is unreadable ({reason}: not a numpy array of test predictions "
                f"and labels). {PREDICTIONS_FIX}"
            ) from None
        if stacked.ndim != 2 or stacked.shape[0] != 2 or stacked.dtype.kind not in "iu":
            raise ResultsSchemaError(
                f"predictions file {path} holds a {stacked.dtype} array of shape {stacked.shape}, not the "
                f"(2, N) integer test predictions and labels fusionzoo writes. {PREDICTIONS_FIX}"
            )
        return stacked[0], stacked[1]

    def checkpoint_dir(self, run_id: str) -> Path:
        return self.checkpoints_dir / run_id

    # --------------------------------------------------------------------------------------- writing
    def record(
        self,
        row: dict[str, Any],
        history: list[dict[str, Any]] | None = None,
        predictions: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        diagnostics: list[dict[str, Any]] | None = None,
    ) -> None:
        """Add (or replace, same ``run_id``) one finished run, atomically (with its history, test
        predictions and diagnostics rows when given)."""
        missing = [c for c in (*IDENTITY, "status") if c not in row]
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
            buffer = io.BytesIO()
            np.save(buffer, stacked, allow_pickle=False)
            atomic_write(self.predictions_dir / f"{run_id}.npy", buffer.getvalue())
        with file_lock(self.dir / ".results.lock"), disk_errors(self.results_path, "the results table"):
            if history is not None:
                old = self.load_history()
                old = old[old["run_id"].astype(str) != run_id] if len(old) else old
                new = pd.DataFrame([{"run_id": run_id, **h} for h in history])
                frames = [f for f in (old, new) if len(f)]
                if frames:
                    atomic_write(self.history_path, _table_bytes(pd.concat(frames, ignore_index=True)))
            if diagnostics:
                self._replace_rows(
                    self.dir / DIAGNOSTICS_FILE, pd.DataFrame([{"run_id": run_id, **d} for d in diagnostics])
                )
            table = self.load()
            table = table[table["run_id"].astype(str) != run_id] if len(table) else table
            frames = [f for f in (table, pd.DataFrame([row])) if len(f)]
            atomic_write(self.results_path, _table_bytes(pd.concat(frames, ignore_index=True)))

    def _replace_rows(self, path: Path, new: pd.DataFrame, key: str = "run_id") -> None:
        """Replace the rows of ``path`` whose ``key`` occurs in ``new`` (caller holds the lock)."""
        old = read_table(path, (key,)) if path.exists() else pd.DataFrame(columns=[key])
        old = old[~old[key].astype(str).isin(set(new[key].astype(str)))]
        frames = [f for f in (old, new) if len(f)]
        atomic_write(path, _table_bytes(pd.concat(frames, ignore_index=True)))

    def record_classes(
        self,
        dataset: str,
        data_fingerprint: str,
        classes: list[str],
        train_labels: np.ndarray,
        test_labels: np.ndarray,
    ) -> None:
        """The classes of one data fingerprint: names, train/test counts and the head/medium/tail
        bucket the trainer's ``acc_head``/``acc_medium``/``acc_tail`` use (``classes.parquet``)."""
        from fusionzoo.metrics.class_buckets import BUCKETS, class_buckets

        num_classes = len(classes)
        buckets = class_buckets(train_labels, num_classes)
        frame = pd.DataFrame(
            {
                "dataset": dataset,
                "data_fingerprint": data_fingerprint,
                "class_id": np.arange(num_classes, dtype=np.int64),
                "class_name": [str(c) for c in classes],
                "train_count": np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=num_classes),
                "test_count": np.bincount(np.asarray(test_labels, dtype=np.int64), minlength=num_classes),
                "bucket": [BUCKETS[b] for b in buckets],
            }
        )
        path = self.dir / CLASSES_FILE
        with file_lock(self.dir / ".results.lock"), disk_errors(path, "the classes table"):
            self._replace_rows(path, frame, key="data_fingerprint")

    def record_provenance(self, row: dict[str, Any]) -> None:
        """Append one bench invocation's provenance row (``provenance.parquet``; key ``invocation``)."""
        path = self.dir / PROVENANCE_FILE
        with file_lock(self.dir / ".results.lock"), disk_errors(path, "the provenance table"):
            self._replace_rows(path, pd.DataFrame([row]), key="invocation")


def reuse_report(specs: list[Any], frame: pd.DataFrame) -> tuple[list[str], dict[str, list[str]]]:
    """(run ids of ``specs`` already finished, {reason: [run labels]} for earlier runs of the same
    dataset/fusion/head/seed that are *not* reused because part of their identity changed)."""
    finished = set(frame.loc[frame["status"].isin(FINISHED), "run_id"].astype(str)) if len(frame) else set()
    reused = [s.run_id for s in specs if s.run_id in finished]
    reasons: dict[str, list[str]] = {}
    if not len(frame):
        return reused, reasons
    done = frame[frame["status"].isin(FINISHED)]
    for spec in specs:
        if spec.run_id in finished:
            continue
        same = done[
            (done["dataset"] == spec.identity["dataset"])
            & (done["fusion"] == spec.fusion)
            & (done["head"] == spec.head)
            & (done["seed"].astype(int) == spec.seed)
        ]
        for _, old in same.iterrows():
            key = "; ".join(_changes(old, spec.identity)) or "its identity changed"
            reasons.setdefault(key, []).append(spec.label)
            break
    return reused, reasons


_REASONS = {
    "data_fingerprint": "the data changed (dataset files, options, limit/filters or encoders)",
    "config_hash": "the training configuration changed",
    "semantics": "fusionzoo's training semantics changed",
    "plugins": "a plugin's version changed",
}


def _changes(old: Any, identity: dict[str, Any]) -> list[str]:
    """Why a finished run (``old``, a results row) is not the run ``identity`` describes, in words."""
    out = [text for part, text in _REASONS.items() if str(old[part]) != str(identity[part])]
    code = changed_code(str(old.get("code", "")), str(identity.get("code", "")))
    if code:
        out.append(f"the code of {', '.join(code)} changed")
    regime = regime_changes(str(old.get("regime", "")), str(identity.get("regime", "")))
    if regime:
        out.append(f"the training regime changed ({regime})")
    return out
