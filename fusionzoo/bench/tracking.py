"""Optional MLflow tracking of a bench (``fusionzoo bench --mlflow URI``; the ``mlflow`` extra).

One MLflow run per bench invocation (the parent: the grid's settings, and the report as an artifact
with ``--report``), and one child run per run of the grid
(``mlflow.parentRunId``): the run's identity and RunConfig fields as params, every history column as a
metric per epoch (``step`` = epoch), the final ``test_*``/``val_*`` metrics, train time and parameter
count, and its test predictions and checkpoint ``config.json`` as artifacts (weights stay in the runs
directory; the ``fusionzoo.checkpoint`` tag says where). Runs reused from earlier invocations are
logged too, from the results tables, tagged ``fusionzoo.reused=true``, so the parent shows the whole grid.

Everything is logged through ``mlflow.tracking.MlflowClient`` (no global active run). A tracking
error is printed once and tracking stops; it never fails the bench. For a local backend (``sqlite:``
or ``file:`` URI, or a path) artifacts go to ``<runs dir>/mlflow-artifacts``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fusionzoo.endpoints import mask_url, unreachable
from fusionzoo.errors import FusionzooError

__all__ = ["MlflowTracker", "TrackingError", "check_server"]

EXPERIMENT_PREFIX = "fusionzoo"
# MLflow's HTTP settings for a bench: a tracking server that stops answering costs seconds, not minutes
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "30", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2"}
IDENTITY_PARAMS = ("dataset", "fusion", "head", "seed", "config_id", "run_id", "data_fingerprint", "mode")


class TrackingError(FusionzooError, RuntimeError):
    """MLflow is not installed or the tracking URI cannot be opened."""


def check_server(uri: str) -> None:
    """An ``http(s)://`` tracking server must accept a connection within seconds (``TrackingError``
    naming the URL, password masked); every request then gets :data:`HTTP_LIMITS` unless the
    environment sets them (MLflow's own defaults: 7 retries with backoff, 120 s each: minutes of
    silence for a server that is down)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    try:
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # a port that is not a number
        raise TrackingError(f"--mlflow {mask_url(uri)} is not a valid URL ({exc})") from None
    if not host:
        raise TrackingError(f"--mlflow {mask_url(uri)} is not a valid URL (no host)")
    reason = unreachable(host, port)
    if reason:
        raise TrackingError(
            f"--mlflow {mask_url(uri)}: cannot reach the MLflow tracking server at {host}:{port} ({reason}); "
            "is `mlflow server` running there?"
        )
    for name, value in HTTP_LIMITS.items():
        os.environ.setdefault(name, value)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


class MlflowTracker:
    """A parent MLflow run for one bench invocation; :meth:`log_run` adds a child per run."""

    def __init__(self, uri: str, runs_dir: str | Path, config: Any, console: Any = None) -> None:
        self.console = console
        self.runs_dir = Path(runs_dir)
        self.uri = uri if "://" in uri or uri.startswith("file:") else f"sqlite:///{Path(uri).resolve()}"
        self.enabled = True
        check_server(self.uri)  # before importing MLflow (seconds): a server that is down is said at once
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise TrackingError(
                "--mlflow needs MLflow: pip install 'fusionzoo[mlflow]' (or mlflow-skinny)"
            ) from exc
        try:
            self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
            self.experiment_id = self._experiment(f"{EXPERIMENT_PREFIX}:{self.runs_dir.resolve().name}")
            parent = self.client.create_run(
                self.experiment_id,
                run_name=f"bench {time.strftime('%Y-%m-%d %H:%M:%S')}",
                tags={"fusionzoo.runs_dir": str(self.runs_dir.resolve())},
            )
        except Exception as exc:  # noqa: BLE001 - any backend error: say which URI
            shown = mask_url(uri)
            reason = str(exc).replace(uri, shown).replace(self.uri, mask_url(self.uri))
            raise TrackingError(f"--mlflow {shown}: cannot open the tracking backend ({reason})") from exc
        self.parent_id = parent.info.run_id
        bench = config.bench
        self._batch(
            self.parent_id,
            params={
                "datasets": ",".join(bench.datasets),
                "fusions": ",".join(bench.fusions),
                "heads": ",".join(bench.heads) or "natural",
                "seeds": ",".join(str(s) for s in bench.seeds),
                "mode": bench.mode,
                "metric": config.metric,
            },
        )

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        local = self.uri.startswith(("sqlite:", "file:"))
        location = (self.runs_dir / "mlflow-artifacts").resolve().as_uri() if local else None
        return self.client.create_experiment(name, artifact_location=location)

    def _batch(
        self,
        run_id: str,
        params: dict[str, Any] | None = None,
        metrics: Iterable[tuple[str, float, int]] = (),
        tags: dict[str, str] | None = None,
    ) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        param_list = [Param(k, str(v)[:6000]) for k, v in (params or {}).items()]
        metric_list = [Metric(k, float(v), now, int(step)) for k, v, step in metrics if _finite(v)]
        tag_list = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        for i in range(0, max(len(param_list), 1), 100):
            self.client.log_batch(run_id, params=param_list[i : i + 100], tags=tag_list if i == 0 else [])
        for i in range(0, len(metric_list), 1000):
            self.client.log_batch(run_id, metrics=metric_list[i : i + 1000])

    def _guard(self, what: str, func: Any, *args: Any) -> Any:
        if not self.enabled:
            return None
        try:
            return func(*args)
        except Exception as exc:  # noqa: BLE001 - tracking must never fail the bench
            self.enabled = False
            if self.console is not None:
                self.console.print(f"[yellow]mlflow: {what} failed ({exc}); tracking stops here[/yellow]")
            return None

    # ------------------------------------------------------------------------------------- public
    def log_run(
        self, row: dict[str, Any], history: list[dict[str, Any]] | None = None, reused: bool = False
    ) -> None:
        """One child run from a results-table row and its history rows."""
        self._guard(f"logging run {row.get('run_id')}", self._log_run, row, history or [], reused)

    def log_record(self, record: Any) -> None:
        """:meth:`log_run` of a :class:`~fusionzoo.launch.base.RunRecord` as the runner finishes it."""
        self.log_run(record.row, record.history)

    def _log_run(self, row: dict[str, Any], history: list[dict[str, Any]], reused: bool) -> None:
        label = f"{row['fusion']}@{row['head']} seed {row['seed']}"
        status = str(row.get("status", ""))
        tags = {
            "mlflow.parentRunId": self.parent_id,
            "fusionzoo.status": status,
            "fusionzoo.reused": str(reused).lower(),
            "fusionzoo.checkpoint": str(self.runs_dir / "checkpoints" / str(row["run_id"])),
        }
        if row.get("error"):
            tags["fusionzoo.error"] = str(row["error"])[:5000]
        child = self.client.create_run(self.experiment_id, run_name=label, tags=tags).info.run_id
        params = {k: row[k] for k in IDENTITY_PARAMS if k in row}
        with contextlib.suppress(TypeError, ValueError):
            params.update({f"config.{k}": v for k, v in json.loads(row.get("config") or "{}").items()})
        metrics: list[tuple[str, float, int]] = []
        for record in history:
            step = int(record.get("epoch", 0))
            metrics.extend((k, v, step) for k, v in record.items() if k not in ("epoch", "run_id"))
        final = [
            k for k in row if k.startswith(("test_", "val_")) or k in ("train_time", "params", "best_epoch")
        ]
        metrics.extend((f"best.{k}" if k.startswith("val_") else k, row[k], 0) for k in final)
        self._batch(child, params=params, metrics=metrics)
        for path in (
            self.runs_dir / "predictions" / f"{row['run_id']}.npy",
            self.runs_dir / "checkpoints" / str(row["run_id"]) / "config.json",
        ):
            if path.exists():
                self.client.log_artifact(child, str(path))
        self.client.set_terminated(child, status="FAILED" if status == "failed" else "FINISHED")

    def log_reused(self, rows: Any, history: Any) -> None:
        """Children for runs the invocation reused (results-table rows and the history table)."""
        for _, row in rows.iterrows():
            part = history[history["run_id"].astype(str) == str(row["run_id"])] if len(history) else history
            self.log_run(row.to_dict(), part.to_dict("records"), reused=True)

    def finish(self, failed: bool, artifacts: Iterable[Path] = (), status: str | None = None) -> None:
        """Attach ``artifacts`` (e.g. the report) to the parent and close it (``FINISHED``, ``FAILED`` when
        a run failed, or ``status``, e.g. ``KILLED`` for an interrupted bench)."""

        def close() -> None:
            for path in artifacts:
                if Path(path).exists():
                    self.client.log_artifact(self.parent_id, str(path))
            self.client.set_terminated(self.parent_id, status=status or ("FAILED" if failed else "FINISHED"))

        self._guard("closing the bench run", close)
