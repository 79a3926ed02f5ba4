"""The code path every loader shares (GLAMI-1M, the synthetic dataset, user CSVs).

A loader only knows its file format: it reads its CSVs with
:func:`fusionzoo.data.checks.read_csv_checked` and turns each split into a *raw frame* with the columns
of :data:`fusionzoo.data.checks.RAW_COLUMNS` (``raw_label`` still in the source's own label vocabulary,
``row`` the 1-based CSV line for error messages). :func:`assemble_splits`
then does everything else identically for all formats:

1. duplicate item ids: dropped (first occurrence kept) with a :class:`DataWarning`; an item id present
   in both train and test is removed from train (the test set is the benchmark, it is never changed);
2. label map from the *full* train split (before any filter) in the loader's documented order, stored
   with the dataset (:func:`resolve_label_map`) so train/test/checkpoints agree;
3. test rows whose label never occurs in train: dropped and reported (count per label, warning);
4. filters ``label_source`` (``all`` | ``human``) and ``geos``;
5. validation split carved from train, seeded and stratified (:func:`stratified_split`);
6. subsampling ``limit`` / ``per_class_cap`` on train, with val/test scaled by the same ratio, class
   distribution kept (:func:`subsample_like`);
7. image files checked to exist (policy ``skip`` drops and warns with the first item ids, ``fail``
   raises naming the file; ``check_images=False`` keeps such rows); empty texts and undecodable bytes
   counted and warned about.

The fingerprint covers the CSV files (path, size, mtime), every option above, the classes and every
selected image file by path, size and mtime (one ``stat`` per file, also with ``check_images=False``;
no image is read or hashed, so it stays fast for 1M images): an edited or touched image with unchanged
CSVs gives a new fingerprint and so new cache entries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.data.base import (
    BAD_IMAGE_POLICIES,
    COLUMNS,
    HUMAN_LABEL_SOURCES,
    DataError,
    DatasetSplits,
    fingerprint_of,
)
from fusionzoo.data.checks import (
    check_images_exist,
    dedupe,
    examples,
    file_identity,
    image_files_identity,
    stat_images,
    warn,
)
from fusionzoo.io import atomic_write

LABEL_SOURCES = ("all", "human")


# ------------------------------------------------------------------------------------------ label map
def label_order(raw_labels: Iterable[str]) -> list[str]:
    """The documented class order: numeric ascending when every label is an integer, else sorted text."""
    unique = sorted(set(raw_labels))
    try:
        return sorted(unique, key=lambda v: (int(v), v))
    except ValueError:
        return unique


def resolve_label_map(
    train: pd.DataFrame, locations: Sequence[Path], info: dict[str, Any], *, source: str
) -> tuple[list[str], list[str]]:
    """``(raw labels in label order, class names)`` from the full train split, stored at ``locations``.

    An existing stored map wins when it covers every train label (so checkpoints stay valid); otherwise
    a fresh map is computed, saved to the first writable location, and a warning says it changed.
    """
    import json

    names = train.groupby("raw_label", sort=False)["class_name"].agg(lambda s: s.value_counts().index[0])
    present = set(names.index)
    stored_at = next((p for p in locations if p.is_file()), None)
    if stored_at is not None:
        try:
            payload = json.loads(stored_at.read_text(encoding="utf-8"))
            raw = [str(entry["raw_label"]) for entry in payload["classes"]]
            stored_names = [str(entry["name"]) for entry in payload["classes"]]
        except (ValueError, KeyError, TypeError) as exc:
            warn(info, f"label map {stored_at} is unreadable ({exc}); recomputing it from train")
        else:
            if present <= set(raw):
                info["label_map_path"] = str(stored_at)
                return raw, stored_names
            warn(
                info,
                f"label map {stored_at} lacks train label(s) {examples(sorted(present - set(raw)))}; "
                "recomputing it from train (checkpoints trained with the old map no longer match)",
            )
    raw = label_order(present)
    classes = [str(names[r]) for r in raw]
    payload = {
        "source": source,
        "order": "raw label ascending (numeric when every label is an integer, else text), from train",
        "classes": [
            {"label": i, "raw_label": r, "name": n} for i, (r, n) in enumerate(zip(raw, classes, strict=True))
        ],
    }
    for location in locations:
        try:
            location.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(location, json.dumps(payload, indent=1, ensure_ascii=False))
        except OSError:
            continue
        info["label_map_path"] = str(location)
        break
    else:
        warn(info, f"could not store the label map at {', '.join(map(str, locations))}")
    return raw, classes


# ---------------------------------------------------------------------------------- splits / sampling
def stratified_split(
    labels: np.ndarray, fraction: float, seed: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """Boolean mask of the rows that go to the held-out part, seeded, stratified by label and grouped.

    Rows of one group (e.g. items that share an image file) always land on the same side, so a held-out
    split never contains an image the training split has. Each group belongs to the class of its first
    row; each class with at least two groups gives ``round(fraction · groups)`` of its groups, at least
    one and at most all but one; a class with a single group stays entirely in train. Without
    ``groups`` every row is its own group.
    """
    labels = np.asarray(labels)
    mask = np.zeros(len(labels), dtype=bool)
    if fraction <= 0 or len(labels) == 0:
        return mask
    if groups is None:
        group_of = np.arange(len(labels))
    else:
        group_of = pd.factorize(pd.Series(groups).astype(str), sort=False)[0]
    first_row = np.unique(group_of, return_index=True)[1]  # group id -> its first row
    group_label = labels[first_row]
    rng = np.random.default_rng(seed)
    held_out = np.zeros(len(first_row), dtype=bool)
    for label in np.unique(group_label):
        members = np.flatnonzero(group_label == label)
        if len(members) < 2:
            continue
        take = min(max(1, int(math.floor(fraction * len(members) + 0.5))), len(members) - 1)
        held_out[rng.permutation(members)[:take]] = True
    mask[held_out[group_of]] = True
    return mask


def proportional_counts(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes in proportion to ``counts`` (largest remainder), ≥1 per class if room."""
    counts = np.asarray(counts, dtype=np.int64)
    if total >= counts.sum():
        return counts.copy()
    exact = counts * total / counts.sum()
    out = np.floor(exact).astype(np.int64)
    if total >= len(counts):
        out = np.maximum(out, np.minimum(counts, 1))
    remaining = total - out.sum()
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    for index in order:
        if remaining <= 0:
            break
        if out[index] < counts[index]:
            out[index] += 1
            remaining -= 1
    while remaining < 0:  # the ≥1 floor overshot: take back from the largest classes
        index = int(np.argmax(out))
        out[index] -= 1
        remaining += 1
    return out


def sample_per_class(labels: np.ndarray, quota: dict[int, int], seed: int) -> np.ndarray:
    """Sorted row indices: ``quota[label]`` random rows of each label (seeded)."""
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        keep.append(rng.permutation(rows)[: quota.get(int(label), len(rows))])
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def subsample(
    frame: pd.DataFrame, *, limit: int | None, per_class_cap: int | None, seed: int
) -> pd.DataFrame:
    """At most ``per_class_cap`` rows per class, then at most ``limit`` rows keeping the distribution."""
    labels = frame["label"].to_numpy()
    if per_class_cap is not None:
        if per_class_cap < 1:
            raise DataError(f"per_class_cap must be ≥ 1, got {per_class_cap}")
        classes, counts = np.unique(labels, return_counts=True)
        frame = frame.iloc[
            sample_per_class(
                labels,
                dict(zip(classes.tolist(), np.minimum(counts, per_class_cap).tolist(), strict=True)),
                seed,
            )
        ]
        labels = frame["label"].to_numpy()
    if limit is not None:
        if limit < 1:
            raise DataError(f"limit must be ≥ 1, got {limit}")
        classes, counts = np.unique(labels, return_counts=True)
        quota = proportional_counts(counts, limit)
        frame = frame.iloc[
            sample_per_class(labels, dict(zip(classes.tolist(), quota.tolist(), strict=True)), seed + 1)
        ]
    return frame


def scale_like(frame: pd.DataFrame, ratio: float, seed: int) -> pd.DataFrame:
    """Stratified subsample of ``frame`` to ``ratio`` of its rows (used for val/test after a train limit)."""
    if ratio >= 1 or len(frame) == 0:
        return frame
    target = max(1, int(round(len(frame) * ratio)))
    return subsample(frame, limit=target, per_class_cap=None, seed=seed)


# ------------------------------------------------------------------------------------------- assembly
def assemble_splits(
    *,
    name: str,
    root: Path,
    raw_train: pd.DataFrame,
    raw_test: pd.DataFrame,
    sources: dict[str, Path],
    label_map_locations: Sequence[Path],
    info: dict[str, Any],
    options: dict[str, Any],
    limit: int | None = None,
    per_class_cap: int | None = None,
    label_source: str = "all",
    geos: Sequence[str] | str | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    on_bad_image: str = "skip",
    check_images: bool = True,
    known_geos: Sequence[str] | None = None,
    extra_fingerprint: Callable[[], Any] | None = None,
    raw_val: pd.DataFrame | None = None,
) -> DatasetSplits:
    """Turn raw train/test frames into a :class:`DatasetSplits` (see the module docstring for the steps).

    ``raw_val``: a dataset's own validation split (Hateful Memes' dev_seen, N24News' dev). It is read
    like test (duplicates, ids also in test dropped from it, labels unseen in train excluded) and
    replaces the carve-out from train (``val_fraction`` is then unused); ids also in it leave train.
    """
    if label_source not in LABEL_SOURCES:
        raise DataError(f"label_source must be one of {', '.join(LABEL_SOURCES)}, got {label_source!r}")
    if on_bad_image not in BAD_IMAGE_POLICIES:
        raise DataError(f"on_bad_image must be one of {', '.join(BAD_IMAGE_POLICIES)}, got {on_bad_image!r}")
    if not 0 <= val_fraction < 1:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")

    raw_train = dedupe(raw_train, "train", sources["train"], info)
    raw_test = dedupe(raw_test, "test", sources["test"], info)
    if raw_val is not None:
        raw_val = dedupe(raw_val, "val", sources["val"], info)
        in_test = raw_val["item_id"].isin(set(raw_test["item_id"]))
        if in_test.any():
            info["val_test_overlap_dropped"] = int(in_test.sum())
            warn(info, f"{int(in_test.sum())} val item_id(s) also occur in test; removed from val")
            raw_val = raw_val.loc[~in_test]
        raw_train = raw_train.loc[~raw_train["item_id"].isin(set(raw_val["item_id"]))]
    overlap = raw_train["item_id"].isin(set(raw_test["item_id"]))
    if overlap.any():
        ids = raw_train.loc[overlap, "item_id"].tolist()
        info["train_test_overlap_dropped"] = len(ids)
        warn(
            info,
            f"{len(ids)} item_id(s) occur in both train and test; removed from train (item_ids {examples(ids)})",
        )
        raw_train = raw_train.loc[~overlap]
    if len(raw_train) == 0:
        raise DataError(f"{sources['train']}: the train split has no rows")

    raw_labels, classes = resolve_label_map(raw_train, label_map_locations, info, source=name)
    label_of = {raw: i for i, raw in enumerate(raw_labels)}

    unseen = ~raw_test["raw_label"].isin(label_of.keys())
    if unseen.any():
        counts = raw_test.loc[unseen, "raw_label"].value_counts()
        info["unseen_test_labels"] = {str(k): int(v) for k, v in counts.items()}
        warn(
            info,
            f"{sources['test']}: {int(unseen.sum())} test row(s) have a label never seen in train and are "
            f"excluded from the test split: "
            + ", ".join(f"{label} ({count} rows)" for label, count in list(counts.items())[:10])
            + (" …" if len(counts) > 10 else ""),
        )
        raw_test = raw_test.loc[~unseen]
    raws = {"train": raw_train, "test": raw_test}
    if raw_val is not None:
        raws["val"] = raw_val.loc[raw_val["raw_label"].isin(label_of.keys())]
        if len(raws["val"]) < len(raw_val):
            info["unseen_val_labels"] = int(len(raw_val) - len(raws["val"]))
            warn(info, f"{info['unseen_val_labels']} val row(s) have a label never seen in train; excluded")

    frames = {}
    for split, raw in raws.items():
        frame = pd.DataFrame(
            {
                "item_id": raw["item_id"].astype(str).to_numpy(dtype=object),
                "image_path": raw["image_path"].to_numpy(dtype=object),
                "text": raw["text"].to_numpy(dtype=object),
                "label": raw["raw_label"].map(label_of).to_numpy(dtype=np.int64),
                "geo": raw["geo"].fillna("").astype(str).str.strip().str.lower().to_numpy(dtype=object),
                "label_source": raw["label_source"].to_numpy(dtype=object),
            }
        )
        frame["is_human"] = frame["label_source"].isin(HUMAN_LABEL_SOURCES).to_numpy(dtype=bool)
        frames[split] = frame

    if isinstance(geos, str):  # "cz,sk" from a command line or a TOML string
        geos = geos.split(",")
    if geos:
        wanted = [g.strip().lower() for g in geos if g.strip()]
        present = set(frames["train"]["geo"]) | set(frames["test"]["geo"])
        unknown = [g for g in wanted if g not in present]
        if unknown:
            valid = sorted(present | set(known_geos or ()))
            raise DataError(
                f"geo(s) {', '.join(unknown)} not in the dataset; present geos: {', '.join(sorted(present))}"
                + (f" (GLAMI geos: {', '.join(valid)})" if known_geos else "")
            )
        for split in frames:
            frames[split] = frames[split].loc[frames[split]["geo"].isin(wanted)]
    if label_source == "human":
        for split in frames:
            frames[split] = frames[split].loc[frames[split]["is_human"]]
    if len(frames["train"]) == 0:
        raise DataError(
            f"no train rows left after the filters (label_source={label_source}, geos={geos}); relax them"
        )

    train = frames["train"].reset_index(drop=True)
    if "val" in frames:  # the dataset's own validation split
        val = frames["val"]
    else:  # grouped by image file: items sharing an image never straddle train and validation
        held_out = stratified_split(
            train["label"].to_numpy(), val_fraction, seed, train["image_path"].to_numpy()
        )
        val = train.loc[held_out]
        train = train.loc[~held_out]
    test = frames["test"]

    before = len(train)
    train = subsample(train, limit=limit, per_class_cap=per_class_cap, seed=seed)
    if len(train) < before:
        ratio = len(train) / before
        val = scale_like(val, ratio, seed + 2)
        test = scale_like(test, ratio, seed + 3)

    splits = {"train": train, "val": val, "test": test}
    shared = test["image_path"].isin(set(train["image_path"]))
    if shared.any():
        info["test_rows_sharing_a_train_image"] = int(shared.sum())
        warn(
            info,
            f"{int(shared.sum())} test row(s) show an image file that also occurs in train (test accuracy can "
            f"be inflated by memorised images; item_ids {examples(test.loc[shared, 'item_id'])})",
        )
    image_stats: dict[str, tuple[int, int] | None] = {}
    for split in splits:
        stats = stat_images(pd.unique(splits[split]["image_path"]))
        image_stats.update(stats)
        if check_images:
            splits[split] = check_images_exist(splits[split], split, on_bad_image, info, stats)
        splits[split] = splits[split].reset_index(drop=True)[list(COLUMNS)]
        empty = splits[split]["text"].str.strip() == ""
        if empty.any():
            info.setdefault("empty_text", {})[split] = int(empty.sum())
            warn(
                info,
                f"{split}: {int(empty.sum())} row(s) have an empty text (kept; the text encoder sees an empty "
                f"string) (item_ids {examples(splits[split].loc[empty, 'item_id'])})",
            )

    info["sizes"] = {split: len(frame) for split, frame in splits.items()}
    payload = {
        "name": name,
        "files": file_identity(sources.values()),
        "options": {
            **options,
            "limit": limit,
            "per_class_cap": per_class_cap,
            "label_source": label_source,
            "geos": sorted(g.lower() for g in geos) if geos else None,
            "val_fraction": val_fraction,
            "val_grouping": "image" if raw_val is None else "official split",
            "seed": seed,
            "on_bad_image": on_bad_image,
            "check_images": check_images,
        },
        "classes": list(raw_labels),
        "images": image_files_identity(image_stats),
    }
    if extra_fingerprint is not None:
        payload["extra"] = extra_fingerprint()
    return DatasetSplits(
        name=name,
        root=Path(root),
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        classes=list(classes),
        fingerprint=fingerprint_of(payload),
        info=info,
    )
