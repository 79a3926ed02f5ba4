"""``hf``: any image-text classification dataset that Hugging Face ``datasets`` reads."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fusionzoo.data.base import DataError, DatasetSplits
from fusionzoo.data.checks import file_identity, join_text, warn
from fusionzoo.data.loading import assemble_splits
from fusionzoo.data.paths import resolve_data_dir
from fusionzoo.datasets._common import NO_VAL, label_map_locations, raw_frame
from fusionzoo.datasets.base import DatasetBackend, register_dataset

FORMATS = ("auto", "disk", "parquet", "arrow", "imagefolder", "hub")
DATA_SUFFIXES = {".parquet": "parquet", ".arrow": "arrow"}
IDENTITY_SUFFIXES = (".parquet", ".arrow", ".json", ".jsonl", ".csv")  # what a local dataset's data is


def detect_format(path: Path) -> str:
    """``disk`` (a ``save_to_disk`` folder), ``parquet``/``arrow`` (files), ``imagefolder`` (images with
    metadata.jsonl/csv) for a local path; ``hub`` when nothing exists there."""
    if path.is_file():
        if path.suffix in DATA_SUFFIXES:
            return DATA_SUFFIXES[path.suffix]
        raise DataError(f"{path}: a data file must be .parquet or .arrow (or pass a folder)")
    if not path.is_dir():
        return "hub"
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return "disk"
    if any(path.rglob("metadata.jsonl")) or any(path.rglob("metadata.csv")):
        return "imagefolder"
    for suffix, kind in DATA_SUFFIXES.items():
        if any(path.rglob(f"*{suffix}")):
            return kind
    raise DataError(
        f"{path} holds no dataset: expected a save_to_disk folder (dataset_dict.json), Parquet/Arrow "
        "files, or images with a metadata.jsonl/metadata.csv (an imagefolder)"
    )


def parse_data_files(value: str | Sequence[str] | None) -> dict[str, list[str]] | None:
    """``"train=a.parquet;test=b.parquet"`` (or a list of ``split=glob``) → ``{split: [globs]}``."""
    if value is None or value == "":
        return None
    items = value.split(";") if isinstance(value, str) else list(value)
    out: dict[str, list[str]] = {}
    for item in (str(i).strip() for i in items if str(i).strip()):
        split, eq, files = item.partition("=")
        if not eq or not split.strip() or not files.strip():
            raise DataError(f"data_files item {item!r} is not split=FILE (e.g. train=train.parquet)")
        out.setdefault(split.strip(), []).append(files.strip())
    return out


def open_dataset(
    path: str, kind: str, data_files: dict[str, list[str]] | None, config: str | None, revision: str | None,
    cache: Path,
) -> Any:  # fmt: skip
    """The ``DatasetDict`` (or ``Dataset``) for ``path``; Hub errors (offline, unknown name) → DataError."""
    import datasets

    if kind == "disk":
        return datasets.load_from_disk(path)
    if kind in ("parquet", "arrow"):
        files = data_files or (path if Path(path).is_file() else None)
        where = {"data_files": files} if files else {"data_dir": path}
        return datasets.load_dataset(kind, cache_dir=str(cache), **where)
    if kind == "imagefolder":
        return datasets.load_dataset(
            "imagefolder", data_dir=path, data_files=data_files, cache_dir=str(cache)
        )
    try:
        return datasets.load_dataset(path, name=config, revision=revision, data_files=data_files,
                                     cache_dir=str(cache))  # fmt: skip
    except (ConnectionError, OSError) as exc:
        offline = datasets.config.HF_HUB_OFFLINE
        why = (
            "the Hub is offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set) and the dataset is not in "
            f"the datasets cache {cache}; unset it to download, or pass a local folder"
            if offline
            else f"it could not be fetched from the Hub ({str(exc).splitlines()[0]})"
        )
        raise DataError(f"hf dataset {path!r} is not a local path and {why}") from None
    except (ValueError, FileNotFoundError) as exc:
        raise DataError(f"hf dataset {path!r}: {str(exc).splitlines()[0]}") from None


def split_of(dataset: Any, split: str, option: str, path: str) -> Any:
    names = list(dataset.keys()) if hasattr(dataset, "keys") else ["train"]
    if split not in names:
        raise DataError(
            f"hf dataset {path}: {option}={split!r} is not one of its splits ({', '.join(names)})"
        )
    return dataset[split] if hasattr(dataset, "keys") else dataset


def read_split(
    ds: Any, split: str, *, columns: dict[str, Any], separator: str, base: Path | None, images: Path, info: dict
) -> pd.DataFrame:  # fmt: skip
    """One Hugging Face split as a raw frame: images as files, texts joined, ClassLabel names."""
    from datasets import ClassLabel

    from fusionzoo.datasets._hf_images import image_files

    wanted = [
        columns["image"],
        *columns["text"],
        columns["label"],
        *([columns["id"]] if columns["id"] else []),
    ]
    missing = [c for c in wanted if c not in ds.column_names]
    if missing:
        raise DataError(
            f"hf split {split!r} has no column(s) {', '.join(missing)}; its columns: {', '.join(ds.column_names)} "
            "(name them with image_column, text_column, label_column, id_column)"
        )
    feature = ds.features[columns["label"]]
    values = ds[columns["label"]]
    if isinstance(feature, ClassLabel):
        known = [v is not None and int(v) >= 0 for v in values]
        raw = [str(int(v)) if ok else "" for v, ok in zip(values, known, strict=True)]
        names = [feature.names[int(v)] if ok else "" for v, ok in zip(values, known, strict=True)]
    else:
        known = [v is not None and str(v).strip() != "" for v in values]
        raw = names = [str(v).strip() if ok else "" for v, ok in zip(values, known, strict=True)]
    if not any(known):
        raise DataError(
            f"hf split {split!r} has no labels in {columns['label']!r} (an unlabelled test split?)"
        )
    texts = join_text(
        ds.select_columns(columns["text"]).to_pandas().astype(object), columns["text"], separator
    )
    ids = [str(v) for v in ds[columns["id"]]] if columns["id"] else [f"{split}:{i}" for i in range(len(ds))]
    paths = image_files(ds, columns["image"], base=base, folder=images)
    frame = raw_frame(ids, paths, texts, raw, names, range(len(ds)))
    if not all(known):
        dropped = len(known) - sum(known)
        info.setdefault("unlabelled_dropped", {})[split] = dropped
        warn(info, f"hf split {split!r}: {dropped} row(s) without a label dropped")
        frame = frame.loc[known]
    return frame


@register_dataset
class HfDataset(DatasetBackend):
    """A dataset read by Hugging Face ``datasets``: ``path`` = a ``save_to_disk`` folder
    (``load_from_disk``), Parquet/Arrow files or a folder of them (``load_dataset("parquet", ...)``;
    ``data_files="train=a.parquet;test=b.parquet"`` names them per split), an image folder with a
    ``metadata.jsonl``/``metadata.csv`` (``load_dataset("imagefolder", data_dir=...)``), or a Hub
    dataset name (``config``, ``revision``; needs the network unless cached; offline mode is honoured).

    Columns: ``image_column`` (an ``Image`` feature, a path relative to the local folder, or bytes),
    ``text_column`` (one or several, joined with ``text_separator``), ``label_column`` (a
    ``ClassLabel``: label i = its i-th name present in train; else the values, numeric or text order),
    ``id_column`` (default ``<split>:<row>``). Splits: ``train_split``, ``test_split``, ``val_split``
    (none: carved from train with ``val_fraction``). Images held as bytes are written once into
    ``<data dir>/hf/images/`` (content-addressed; see ``fusionzoo/datasets/_hf_images.py``).
    """

    name = "hf"
    description = "any Hugging Face dataset: saved folder, Parquet/Arrow, imagefolder, or the Hub"
    url = "https://huggingface.co/docs/datasets"

    def load(
        self,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        path: str | os.PathLike[str] | None = None,
        format: str = "auto",
        data_files: str | Sequence[str] | None = None,
        config: str | None = None,
        revision: str | None = None,
        image_column: str = "image",
        text_column: str | Sequence[str] = "text",
        label_column: str = "label",
        id_column: str | None = None,
        text_separator: str = "\n",
        train_split: str = "train",
        test_split: str = "test",
        val_split: str | None = None,
        check_images: bool = True,
        **common: Any,
    ) -> DatasetSplits:
        import datasets  # 1-2 s to import: only when an hf dataset is loaded, not on every CLI start

        if not path:
            raise DataError("the hf dataset needs --data-option path=FOLDER|FILE|HUB_NAME")
        if format not in FORMATS:
            raise DataError(f"format={format!r}: expected one of {', '.join(FORMATS)}")
        local = Path(str(path)).expanduser()
        kind = detect_format(local) if format == "auto" else format
        source = str(local.resolve()) if kind != "hub" else str(path)
        text_columns = [text_column] if isinstance(text_column, str) else list(text_column)
        columns = {"image": image_column, "text": text_columns, "label": label_column, "id": id_column}
        store = resolve_data_dir(data_dir) / "hf"
        files = parse_data_files(data_files)
        bars = datasets.utils.are_progress_bars_disabled()
        datasets.utils.disable_progress_bars()
        try:
            loaded = open_dataset(source, kind, files, config, revision, store / "cache")
            wanted = {"train": train_split, "test": test_split}
            if val_split is not None and str(val_split).lower() not in NO_VAL:
                wanted["val"] = str(val_split)
            parts = {s: split_of(loaded, name, f"{s}_split", source) for s, name in wanted.items()}
            info: dict[str, Any] = {"source": source, "format": kind, "splits": wanted}
            base = local.resolve() if kind != "hub" else None
            raw = {
                s: read_split(
                    ds,
                    wanted[s],
                    columns=columns,
                    separator=text_separator,
                    base=base,
                    images=store / "images",
                    info=info,
                )  # fmt: skip
                for s, ds in parts.items()
            }
        finally:
            if not bars:
                datasets.utils.enable_progress_bars()
        sources = {s: self._source_file(ds, local, kind) for s, ds in parts.items()}
        fingerprints = {s: ds._fingerprint for s, ds in parts.items()}
        key = hashlib.sha256(f"{source}\0{label_column}".encode()).hexdigest()
        return assemble_splits(
            name=self.name,
            root=base or store,
            raw_train=raw["train"],
            raw_test=raw["test"],
            raw_val=raw.get("val"),
            sources=sources,
            label_map_locations=label_map_locations(self.name, key, data_dir),
            info=info,
            options={
                "format": kind,
                "path": source,
                "config": config,
                "revision": revision,
                "data_files": files,
                "columns": columns,
                "text_separator": text_separator,
                "splits": wanted,
            },  # fmt: skip
            check_images=check_images,
            extra_fingerprint=lambda: {"hf": fingerprints, "files": self._local_files(local, kind)},
            **common,
        )

    @staticmethod
    def _source_file(ds: Any, local: Path, kind: str) -> Path:
        """A file whose identity stands for the split (its Arrow cache file; else the local path)."""
        cache = [Path(f["filename"]) for f in getattr(ds, "cache_files", []) if Path(f["filename"]).is_file()]
        return cache[0] if cache else local

    @staticmethod
    def _local_files(local: Path, kind: str) -> list[dict[str, Any]]:
        if kind == "hub":
            return []
        if local.is_file():
            return file_identity([local])
        return file_identity(
            sorted(p for p in local.rglob("*") if p.suffix in IDENTITY_SUFFIXES and p.is_file())
        )

    def example(self, folder: Path) -> dict[str, Any]:
        """A saved dataset (``save_to_disk``) of 24 train, 6 validation and 9 test rows: PNG bytes in an
        ``Image`` feature, a ``caption`` column and a ``ClassLabel`` ``kind`` with 3 names."""
        from fusionzoo.data.published_files import write_hf_disk

        return {
            "path": str(write_hf_disk(Path(folder) / "hf-disk")),
            "text_column": "caption",
            "label_column": "kind",
            "val_split": "validation",
            "data_dir": str(folder),
        }

    def status(self, **options: Any) -> str:
        path = options.get("path")
        if not path:
            return "unavailable: the hf dataset needs --data-option path=FOLDER|FILE|HUB_NAME"
        if not Path(str(path)).expanduser().exists() and options.get("format", "auto") in ("auto", "hub"):
            return f"not loaded yet: {path!r} is no local path, so it is read from the Hugging Face Hub (or its cache)"
        return super().status(**options)
