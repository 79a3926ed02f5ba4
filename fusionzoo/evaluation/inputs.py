"""What data each run of a runs directory was trained on, so ``fusionzoo eval`` can rebuild it.

``fusionzoo bench`` writes ``<runs dir>/inputs/<data_fingerprint>.json``: the
:class:`~fusionzoo.prepare.DataOptions` of each dataset (data and cache directories resolved to absolute
paths); ``fusionzoo eval`` adds the feature ``shapes`` (image tokens and dim, mean test text tokens, text
dim, classes), which map a run to its row of ``efficiency.parquet``. ``fusionzoo eval`` reads it back, resolves the inputs again (nothing is encoded) and refuses to
evaluate when the fingerprint no longer matches the runs' (the dataset files or encoders changed since
training), naming what to do.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from fusionzoo.io import atomic_write

__all__ = ["INPUTS_DIR", "load_inputs", "load_shapes", "record_inputs", "record_shapes"]

INPUTS_DIR = "inputs"


def _path(runs_dir: Path, fingerprint: str) -> Path:
    return Path(runs_dir) / INPUTS_DIR / f"{fingerprint}.json"


def record_inputs(runs_dir: str | Path, options: Any, fingerprint: str) -> Path:
    """Write the DataOptions ``options`` of data fingerprint ``fingerprint`` (idempotent)."""
    from fusionzoo.data.paths import resolve_data_dir

    payload = dataclasses.asdict(options)
    payload["data_dir"] = str(resolve_data_dir(options.data_dir))
    payload["cache_dir"] = str(options.cache_root().resolve())
    return _update(Path(runs_dir), fingerprint, options=payload)


def _update(runs_dir: Path, fingerprint: str, **fields: Any) -> Path:
    path = _path(runs_dir, fingerprint)
    current = json.loads(path.read_text()) if path.exists() else {"fingerprint": fingerprint}
    updated = {**current, **fields}
    if updated != current or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(updated, indent=2, sort_keys=True, default=str).encode())
    return path


def record_shapes(runs_dir: str | Path, fingerprint: str, shapes: dict[str, int]) -> Path:
    """Add the feature shapes of ``fingerprint`` (what the efficiency key of its runs needs)."""
    return _update(Path(runs_dir), fingerprint, shapes={k: int(v) for k, v in shapes.items()})


def load_shapes(runs_dir: str | Path, fingerprint: str) -> dict[str, int] | None:
    path = _path(Path(runs_dir), fingerprint)
    return json.loads(path.read_text()).get("shapes") if path.exists() else None


def load_inputs(runs_dir: str | Path, fingerprint: str) -> Any | None:
    """The DataOptions recorded for ``fingerprint``, or ``None`` when the bench did not record them."""
    from fusionzoo.prepare import DataOptions

    path = _path(Path(runs_dir), fingerprint)
    if not path.exists():
        return None
    payload = json.loads(path.read_text()).get("options")
    if payload is None:
        return None
    names = {f.name for f in dataclasses.fields(DataOptions)}
    return DataOptions(**{k: v for k, v in payload.items() if k in names})
