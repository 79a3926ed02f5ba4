"""How a run's training data reaches a worker process: a small picklable *handle*, opened once per process.

- :class:`CacheHandle` (frozen-mode features that live in the feature cache): only the cache entry
  folders travel; the worker memory-maps the same files read-only (the parent has verified them), so N
  workers share the page cache instead of N copies being pickled. Needs the folders at the same path on
  the worker (this machine, or a cluster's shared storage).
- :class:`ObjectHandle` (anything else: in-memory features, finetune-mode :class:`LiveData`, or cached
  features sent to machines without shared storage): the data object itself, pickled. Cached features
  are first read into memory (``detached``), so nothing on the worker points at the driver's disk.

:func:`open_data` opens a handle at most once per process (keyed by :attr:`key`), so a worker that runs
many tasks materialises the data once and never re-encodes anything.
"""

from __future__ import annotations

import copy
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CacheHandle",
    "ObjectHandle",
    "data_handle",
    "detached",
    "folder_files",
    "open_data",
    "write_folder",
]

_OPENED: dict[str, Any] = {}  # per process: handle key -> opened training data


@dataclass(frozen=True)
class CacheHandle:
    """Frozen features by reference: the three cache entry folders and what FeatureData needs."""

    entries: dict[str, str]  # split -> cache entry folder
    num_classes: int
    classes: list[str]
    name: str
    fingerprint: str
    memory_budget: int | None = None

    @property
    def key(self) -> str:
        return f"cache:{self.name}:{self.fingerprint}:" + ",".join(
            self.entries[s] for s in sorted(self.entries)
        )

    @property
    def kind(self) -> str:
        return "cache"

    def paths(self) -> list[Path]:
        return [Path(p) for p in self.entries.values()]

    def open(self) -> Any:
        from fusionzoo.encoders.cache_format import open_entry
        from fusionzoo.train.inputs import FeatureData

        splits = {split: open_entry(Path(folder), "size", None) for split, folder in self.entries.items()}
        data = FeatureData(
            splits["train"],
            splits["val"],
            splits["test"],
            num_classes=self.num_classes,
            classes=list(self.classes),
            name=self.name,
            fingerprint=self.fingerprint,
        )
        if self.memory_budget is not None:
            data.memory_budget = self.memory_budget
        return data


@dataclass(frozen=True)
class ObjectHandle:
    """The data object itself (pickled with the handle)."""

    data: Any
    key: str = field(default_factory=lambda: f"object:{uuid.uuid4().hex}")

    @property
    def kind(self) -> str:
        return "object"

    def open(self) -> Any:
        return self.data


def _cache_entries(data: Any) -> dict[str, str] | None:
    """``{split: entry folder}`` when ``data`` is FeatureData whose three splits are cache entries."""
    from fusionzoo.train.inputs import SPLIT_NAMES, FeatureData

    if not isinstance(data, FeatureData):
        return None
    entries = {}
    for split in SPLIT_NAMES:
        features = data.split(split)
        path = (features.info or {}).get("cache_path")
        if not path or not features.sources or not (Path(path) / "manifest.json").exists():
            return None
        entries[split] = str(path)
    return entries


def _without_tensors(data: Any) -> Any:
    """A shallow copy without FeatureData's materialised tensors (they are rebuilt where needed)."""
    if hasattr(data, "_materialised"):
        data = copy.copy(data)
        data._materialised = {}
    return data


def detached(data: Any) -> Any:
    """``data`` with cached features read into memory (no file paths left), for another machine."""
    from fusionzoo.train.inputs import SPLIT_NAMES, FeatureData

    if not isinstance(data, FeatureData):
        return data
    out = _without_tensors(data)
    for split in SPLIT_NAMES:
        setattr(out, split, data.split(split).in_memory())  # float16 as stored, indices kept
    return out


def data_handle(data: Any, *, by_reference: bool = True, memory_budget: int | None = None) -> Any:
    """The handle a worker opens ``data`` from: by cache reference when possible and wanted, else the
    object (cached features read into memory first when ``by_reference`` is false)."""
    entries = _cache_entries(data) if by_reference else None
    if entries is not None:
        return CacheHandle(
            entries,
            int(data.num_classes),
            list(data.classes),
            str(data.name),
            str(getattr(data, "fingerprint", "")),
            memory_budget,
        )
    payload = _without_tensors(data) if by_reference else detached(data)
    if memory_budget is not None and hasattr(payload, "memory_budget"):
        payload.memory_budget = memory_budget
    return ObjectHandle(payload)


def open_data(handle: Any) -> Any:
    """The training data of ``handle``, opened once per process."""
    key = handle.key
    if key not in _OPENED:
        _OPENED[key] = handle.open()
    return _OPENED[key]


def folder_files(folder: Path) -> dict[str, bytes]:
    """``{name: bytes}`` of the files of ``folder`` (a checkpoint sent to or from another machine)."""
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}


def write_folder(target: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (:func:`folder_files`) into ``target`` atomically (a temp folder, then a rename)."""
    target = Path(target)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name, payload in files.items():
        (partial / name).write_bytes(payload)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
