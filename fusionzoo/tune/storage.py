"""``--storage`` → an Optuna storage, and URLs safe to print.

    (none)                     SQLite file ``<runs dir>/optuna.db`` (one machine, few processes)
    sqlite:///x.db, postgresql+psycopg2://user:pw@host/db, any SQLAlchemy URL
                               ``RDBStorage`` with heartbeats: a worker that dies leaves a trial whose
                               heartbeat stops; after ``grace_period`` another worker fails it and
                               ``RetryHeartbeatStaleTrialCallback`` re-queues it (state WAITING)
    journal:PATH               ``JournalStorage(JournalFileBackend(PATH))`` (many processes, one machine)
    memory                     in-process only (tests, throw-away runs)

A storage that cannot be opened is a :class:`~fusionzoo.tune.TuneError` naming the URL with its
password masked (:func:`mask_url`).
"""

from __future__ import annotations

import inspect
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage

from fusionzoo.endpoints import mask_url
from fusionzoo.tune import TuneError

__all__ = [
    "DEFAULT_DB",
    "ResolvedStorage",
    "default_storage_url",
    "mask_url",
    "resolve_storage",
    "retry_callback",
]

DEFAULT_DB = "optuna.db"


@dataclass
class ResolvedStorage:
    """What ``--storage`` resolved to. ``display`` is safe to print (password masked)."""

    storage: BaseStorage
    display: str
    kind: str  # "sqlite" | "rdb" | "journal" | "memory"
    heartbeat_interval: int | None = None
    grace_period: int | None = None
    url: str = ""  # the full URL (with password), for dashboards and child processes

    @property
    def heartbeat(self) -> bool:
        return self.heartbeat_interval is not None

    @property
    def shared(self) -> bool:
        """Whether other processes can open the same storage."""
        return self.kind != "memory"


def default_storage_url(runs_dir: str | Path) -> str:
    return f"sqlite:///{Path(runs_dir).resolve() / DEFAULT_DB}"


def resolve_storage(
    storage: str | None,
    runs_dir: str | Path = "runs",
    *,
    heartbeat_interval: int | None = 60,
    grace_period: int | None = None,
    max_retry: int | None = 3,
) -> ResolvedStorage:
    """Open the storage behind ``storage`` (see the module docstring); unreachable -> :class:`TuneError`.

    ``heartbeat_interval=None`` disables heartbeats; ``grace_period`` defaults to 2 × the interval.
    """
    if storage is None or not str(storage).strip():
        try:
            Path(runs_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TuneError(
                f"runs directory '{runs_dir}' cannot be created ({exc}); pass a directory with --out"
            ) from None
        storage = default_storage_url(runs_dir)
    storage = str(storage).strip()
    if storage in ("memory", ":memory:"):
        return ResolvedStorage(optuna.storages.InMemoryStorage(), "memory", "memory", url="memory")
    if storage.startswith("journal:"):
        return _journal_storage(storage)
    if "://" not in storage:
        if Path(storage).suffix in (".db", ".sqlite", ".sqlite3"):
            storage = f"sqlite:///{Path(storage).resolve()}"
        else:
            raise TuneError(
                f"storage '{storage}' is not understood; use a SQLAlchemy URL (sqlite:///runs/optuna.db, "
                "postgresql+psycopg2://user:password@host:5432/db), journal:PATH, or a .db file path"
            )
    return _rdb_storage(storage, heartbeat_interval, grace_period, max_retry)


def _journal_storage(spec: str) -> ResolvedStorage:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = Path(spec[len("journal:") :]).expanduser()
    if not str(path) or path.is_dir():
        raise TuneError(f"storage '{spec}': journal:PATH needs a file path, e.g. journal:runs/optuna.journal")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path))
    except OSError as exc:
        raise TuneError(f"storage '{spec}': cannot open the journal file: {exc}") from None
    return ResolvedStorage(JournalStorage(backend), f"journal:{path}", "journal", url=f"journal:{path}")


def _rdb_storage(
    url: str, heartbeat_interval: int | None, grace_period: int | None, max_retry: int | None
) -> ResolvedStorage:
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    shown = mask_url(url)
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError as exc:
        raise TuneError(f"storage '{shown}' is not a valid SQLAlchemy URL: {exc}") from None
    backend = parsed.get_backend_name()
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            try:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TuneError(f"cannot open storage '{shown}': {exc}") from None
        engine_kwargs["connect_args"] = {"timeout": 60}
    elif backend == "postgresql":
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            callback = None
            if heartbeat_interval is not None:
                callback = retry_callback(max_retry)
            for attempt in range(3):
                try:
                    rdb = optuna.storages.RDBStorage(
                        url,
                        engine_kwargs=engine_kwargs,
                        heartbeat_interval=heartbeat_interval,
                        grace_period=grace_period,
                        **{_STALE_CALLBACK_KWARG: callback},
                    )
                    break
                except (
                    sqlalchemy.exc.IntegrityError,
                    sqlalchemy.exc.ProgrammingError,
                    sqlalchemy.exc.OperationalError,
                ) as exc:
                    # workers starting together on a fresh database race to create the tables
                    racing = not isinstance(exc, sqlalchemy.exc.OperationalError) or any(
                        text in str(exc) for text in ("already exists", "database is locked")
                    )
                    if attempt == 2 or not racing:
                        raise
                    time.sleep(0.5 + attempt)
    except ModuleNotFoundError as exc:
        extra = ' (pip install -e ".[postgres]")' if backend == "postgresql" else ""
        raise TuneError(f"storage '{shown}' needs the database driver '{exc.name}'{extra}") from None
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as exc:
        reason = _scrub(first_line(getattr(exc, "orig", None) or exc), parsed.password)
        raise TuneError(f"cannot open storage '{shown}': {reason}") from None
    kind = "sqlite" if backend == "sqlite" else "rdb"
    return ResolvedStorage(rdb, shown, kind, heartbeat_interval, grace_period, url=url)


# Optuna >= 4.9 names these RetryHeartbeatStaleTrialCallback / heartbeat_stale_trial_callback; older
# releases RetryFailedTrialCallback / failed_trial_callback (deprecated aliases since 4.9).
_STALE_CALLBACK_KWARG = (
    "heartbeat_stale_trial_callback"
    if "heartbeat_stale_trial_callback" in inspect.signature(optuna.storages.RDBStorage).parameters
    else "failed_trial_callback"
)


def retry_callback(max_retry: int | None) -> Any:
    cls = (
        getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
        or optuna.storages.RetryFailedTrialCallback
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return cls(max_retry=max_retry)


def first_line(exc: BaseException | object) -> str:
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__


def _scrub(text: str, password: str | None) -> str:
    return text.replace(password, "***") if password else text
