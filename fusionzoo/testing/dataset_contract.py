"""The dataset-backend contract: :func:`check_dataset`.

    from fusionzoo.testing import check_dataset
    check_dataset("glami1m")            # a registered name, a DatasetBackend subclass, or an instance
    check_dataset(MyFormat, tmp_path)   # the folder for the tiny example (default: a temporary one)

The backend writes its own tiny example (:meth:`~fusionzoo.datasets.base.DatasetBackend.example`), and
the checker then verifies, raising :class:`~fusionzoo.testing.ContractError` on the first rule broken:

- ``load`` takes keyword-only options; every name of ``option_names()`` is one of them (or reaches a
  ``**options`` catch-all) and none shadows a common option; an unknown option is a ``DataError``
  naming it (``check_options``);
- ``example(folder)`` returns load options and ``load(**options)`` a ``DatasetSplits`` whose three
  splits have rows and the columns of ``COLUMNS``; labels are integers in ``0..C-1`` with ``C >= 2``
  class names; item ids are unique within and disjoint across splits; image paths are absolute
  existing files; ``is_human`` is boolean;
- the fingerprint is stable (the same options give the same fingerprint and the same rows), changes
  when an option changes the data (``limit``, ``seed``, ``val_fraction`` are tried: different rows
  under one fingerprint would let a stale feature cache be reused), and changes with ``limit``;
- ``status(**options)`` returns one non-empty line, for the example and for an empty data folder,
  without raising; ``default_encoder_specs()`` is ``None`` or two spec strings.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.testing._plugins import build_plugin, scratch_folder
from fusionzoo.testing.contracts import ContractError

__all__ = ["check_dataset"]

UNKNOWN_OPTION = "no_such_option_for_contract_check"


def check_dataset(target: Any, folder: str | Path | None = None, **hp: Any) -> None:
    """Validate a dataset backend (see the module docstring); ``hp``: constructor keyword arguments."""
    from fusionzoo.datasets.base import DatasetBackend

    backend, name = build_plugin("dataset", target, DatasetBackend, hp)
    _check_options_declaration(name, backend)
    with scratch_folder(folder) as root, warnings.catch_warnings():
        from fusionzoo.data.base import DataWarning

        warnings.simplefilter("ignore", DataWarning)
        options = _example(name, backend, root / "example")
        splits = _load(name, backend, options, "load(**example options) returns DatasetSplits")
        _check_splits(name, splits)
        _check_fingerprint(name, backend, options, splits)
        _check_status(name, backend, options, root / "empty-data-dir")
    specs = backend.default_encoder_specs()
    if specs is not None and not (
        isinstance(specs, tuple | list) and len(specs) == 2 and all(isinstance(s, str) for s in specs)
    ):
        raise ContractError(name, "default_encoder_specs() is None or (image spec, text spec)", repr(specs))


def _check_options_declaration(name: str, backend: Any) -> None:
    import inspect

    from fusionzoo.data.base import DataError
    from fusionzoo.datasets.base import COMMON_OPTIONS

    rule = "load takes keyword-only options"
    params = dict(inspect.signature(type(backend).load).parameters)
    params.pop("self", None)
    positional = [
        p
        for p, v in params.items()
        if v.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        or v.kind is inspect.Parameter.VAR_POSITIONAL
    ]
    if positional:
        raise ContractError(name, rule, f"positional parameter(s) {', '.join(positional)} (put them after *)")
    catch_all = any(v.kind is inspect.Parameter.VAR_KEYWORD for v in params.values())
    try:
        declared = list(backend.option_names())
    except Exception as exc:
        raise ContractError(name, "option_names() lists the backend's options", repr(exc)) from exc
    rule = "option_names() are keyword-only load options"
    missing = [o for o in declared if o not in params and not catch_all]
    if missing:
        raise ContractError(name, rule, f"load() has no parameter {', '.join(missing)}")
    shadowing = sorted(set(declared) & set(COMMON_OPTIONS))
    if shadowing:
        raise ContractError(name, rule, f"{', '.join(shadowing)} are common options, not the backend's own")
    try:
        backend.check_options({UNKNOWN_OPTION: 1})
    except DataError as exc:
        if UNKNOWN_OPTION not in str(exc):
            raise ContractError(name, "an unknown option is an error naming it", str(exc)) from exc
    else:
        raise ContractError(name, "an unknown option is an error naming it", "check_options accepted it")


def _example(name: str, backend: Any, folder: Path) -> dict[str, Any]:
    rule = "example(folder) writes a tiny dataset and returns its load options"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        options = backend.example(folder)
    except NotImplementedError as exc:
        raise ContractError(name, rule, f"example() is not implemented ({exc})") from exc
    except Exception as exc:
        raise ContractError(name, rule, f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(options, dict):
        raise ContractError(name, rule, f"got {type(options).__name__}, expected a dict of load options")
    options = dict(options)
    options.setdefault("data_dir", str(folder))  # label maps and generated data stay in the folder
    try:
        backend.check_options(options)
    except Exception as exc:
        raise ContractError(name, rule, f"check_options rejects the example's options: {exc}") from exc
    return options


def _load(name: str, backend: Any, options: dict[str, Any], rule: str) -> Any:
    from fusionzoo.data.base import DatasetSplits

    try:
        splits = backend.load(**options)
    except Exception as exc:
        raise ContractError(name, rule, f"load({_show(options)}) raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(splits, DatasetSplits):
        raise ContractError(name, rule, f"got {type(splits).__name__}")
    return splits


def _show(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in sorted(options.items()) if k != "data_dir")


def _check_splits(name: str, splits: Any) -> None:
    from fusionzoo.data.base import COLUMNS, SPLITS

    classes = list(splits.classes)
    if len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise ContractError(name, "classes are >= 2 class names (str)", f"got {classes[:5]!r}")
    seen: dict[str, str] = {}
    for split in SPLITS:
        frame = splits.split(split)
        if not isinstance(frame, pd.DataFrame):
            raise ContractError(name, "splits are DataFrames", f"{split} is {type(frame).__name__}")
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            raise ContractError(name, "splits have the COLUMNS", f"{split} lacks {', '.join(missing)}")
        if not len(frame):
            raise ContractError(name, "the example's splits all have rows", f"{split} is empty")
        labels = frame["label"]
        if not pd.api.types.is_integer_dtype(labels):
            raise ContractError(name, "labels are integers in 0..C-1", f"{split} labels are {labels.dtype}")
        if labels.min() < 0 or labels.max() >= len(classes):
            raise ContractError(
                name,
                "labels are integers in 0..C-1",
                f"{split} labels span {labels.min()}..{labels.max()} with {len(classes)} classes",
            )
        if not pd.api.types.is_bool_dtype(frame["is_human"]):
            raise ContractError(name, "is_human is boolean", f"{split}: {frame['is_human'].dtype}")
        ids = frame["item_id"].astype(str)
        duplicated = ids[ids.duplicated()].tolist()
        if duplicated:
            raise ContractError(name, "item ids are unique", f"{split} repeats {duplicated[:3]}")
        for item in ids:
            if item in seen:
                raise ContractError(
                    name, "item ids are disjoint across splits", f"{item!r} is in {seen[item]} and {split}"
                )
            seen[item] = split
        for path in frame["image_path"].astype(str).head(20):
            if not (Path(path).is_absolute() and Path(path).is_file()):
                raise ContractError(name, "image paths are absolute existing files", f"{split}: {path!r}")


def _rows(splits: Any) -> list[np.ndarray]:
    return [
        splits.split(s)[["item_id", "label"]].astype(str).to_numpy().ravel() for s in ("train", "val", "test")
    ]


def _same_rows(a: Any, b: Any) -> bool:
    return all(x.shape == y.shape and (x == y).all() for x, y in zip(_rows(a), _rows(b), strict=True))


def _check_fingerprint(name: str, backend: Any, options: dict[str, Any], splits: Any) -> None:
    again = _load(name, backend, options, "load is repeatable")
    if again.fingerprint != splits.fingerprint or not _same_rows(again, splits):
        raise ContractError(
            name,
            "the fingerprint is stable",
            f"two loads with the same options gave {splits.fingerprint!r} and {again.fingerprint!r}"
            + ("" if _same_rows(again, splits) else " and different rows"),
        )
    n_train = len(splits.train)
    variations = {
        "limit": max(2, n_train // 2),
        "seed": int(options.get("seed", 0)) + 1,
        "val_fraction": 0.3 if float(options.get("val_fraction", 0.1)) != 0.3 else 0.2,
    }
    for key, value in variations.items():
        changed = _load(name, backend, {**options, key: value}, f"load accepts the common option {key}")
        if changed.fingerprint == splits.fingerprint and not _same_rows(changed, splits):
            raise ContractError(
                name,
                "the fingerprint changes when an option changes",
                f"{key}={value!r} changes the rows but not the fingerprint {splits.fingerprint!r} "
                "(a feature cache keyed by it would serve stale features)",
            )
        if key == "limit" and changed.fingerprint == splits.fingerprint:
            raise ContractError(
                name, "the fingerprint changes when an option changes", f"limit={value} kept the fingerprint"
            )


def _check_status(name: str, backend: Any, options: dict[str, Any], empty: Path) -> None:
    empty.mkdir(parents=True, exist_ok=True)
    for where, opts in (("the example", options), ("an empty data folder", {"data_dir": str(empty)})):
        try:
            line = backend.status(**opts)
        except Exception as exc:
            raise ContractError(
                name, "status() returns a line without raising", f"on {where}: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(line, str) or not line.strip() or "\n" in line.strip():
            raise ContractError(name, "status() returns a line without raising", f"on {where}: {line!r}")
