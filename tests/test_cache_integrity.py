"""Cache integrity covers every file of an entry, and edited image files invalidate the features."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionzoo.data.glami_files import jpeg_bytes
from fusionzoo.datasets import load_dataset
from fusionzoo.testing.tiny_encoders import encode_quietly
from fusionzoo.testing.tiny_splits import splits_from_csv, write_tiny_glami


def run(splits, tiny_models, cache, **kwargs):
    return encode_quietly(splits, tiny_models, cache, **kwargs)


@pytest.fixture
def encoded(tmp_path, tiny_models):
    splits = splits_from_csv(write_tiny_glami(tmp_path / "data", n=30))
    first, _ = run(splits, tiny_models, tmp_path / "cache", split_names=["train"])
    entry = Path(first["train"].info["cache_path"])
    labels = np.load(entry / "labels.npy")
    del first
    return splits, entry, labels


@pytest.mark.parametrize("verify", ["auto", "size"])
def test_shifted_labels_are_detected_and_the_entry_rebuilt(tmp_path, tiny_models, encoded, verify):
    splits, entry, labels = encoded
    np.save(entry / "labels.npy", np.roll(labels, 1))  # same size, labels shifted by one row
    features, log = run(splits, tiny_models, tmp_path / "cache", split_names=["train"], verify=verify)
    assert "corrupt cache entry for train" in log and "labels.npy" in log and "rebuilding" in log
    assert features["train"].info["reused"] is False
    np.testing.assert_array_equal(np.asarray(features["train"].labels), labels)
    np.testing.assert_array_equal(np.asarray(features["train"].labels), splits.train["label"].to_numpy())


@pytest.mark.parametrize("verify", ["auto", "size"])
def test_an_out_of_range_label_is_a_corrupt_entry_not_a_traceback(tmp_path, tiny_models, encoded, verify):
    splits, entry, labels = encoded
    bad = labels.copy()
    bad[3] = 99
    np.save(entry / "labels.npy", bad)
    features, log = run(splits, tiny_models, tmp_path / "cache", split_names=["train"], verify=verify)
    assert "corrupt cache entry for train" in log and "rebuilding" in log
    if verify == "size":  # no hashes: the range check against the dataset catches it
        assert "label 99 outside 0..3" in log
    np.testing.assert_array_equal(np.asarray(features["train"].labels), labels)


def test_rewritten_meta_and_an_old_manifest_are_rebuilt(tmp_path, tiny_models, encoded):
    splits, entry, _ = encoded
    meta = pd.read_parquet(entry / "meta.parquet")
    meta["item_id"] = meta["item_id"].iloc[::-1].to_numpy()
    meta.to_parquet(entry / "meta.parquet", index=False)
    features, log = run(splits, tiny_models, tmp_path / "cache", split_names=["train"], verify="size")
    assert "corrupt cache entry for train" in log and features["train"].info["reused"] is False
    del features
    manifest = json.loads((entry / "manifest.json").read_text())
    manifest.pop("files")  # an entry written before labels/meta were hashed
    (entry / "manifest.json").write_text(json.dumps(manifest))
    features, log = run(splits, tiny_models, tmp_path / "cache", split_names=["train"])
    assert (
        "no integrity record for rows.i64, image_index.i64, text_index.i64, labels.npy, meta.parquet" in log
    )
    assert features["train"].info["reused"] is False
    again, log = run(splits, tiny_models, tmp_path / "cache", split_names=["train"])
    assert again["train"].info["reused"] and "corrupt" not in log


def _csv_dataset(folder: Path, n: int = 24) -> Path:
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        (folder / "img" / f"{i}.jpg").write_bytes(jpeg_bytes(colour=(40 * (i % 4), 200, 30)))
        rows.append({"id": f"x{i}", "photo": f"img/{i}.jpg", "title": f"title {i}", "y": "ab"[i % 2]})
    pd.DataFrame(rows).to_csv(folder / "train.csv", index=False)
    return folder / "train.csv"


def _load(folder: Path, csv: Path, **options):
    return load_dataset(
        "csv", csv=str(csv), image_col="photo", text_cols=["title"], label_col="y", item_id_col="id",
        data_dir=folder / "home", **options,
    )  # fmt: skip


@pytest.mark.parametrize("check_images", [True, False])
def test_an_edited_image_file_invalidates_the_features(tmp_path, tiny_models, check_images):
    csv = _csv_dataset(tmp_path / "data")
    splits = _load(tmp_path, csv, check_images=check_images)
    first, _ = run(splits, tiny_models, tmp_path / "cache", split_names=["train"])
    key = first["train"].info["key"]
    assert _load(tmp_path, csv, check_images=check_images).fingerprint == splits.fingerprint
    image = Path(splits.train["image_path"].iloc[0])

    # rewritten with other pixels (new size and mtime), CSVs unchanged -> a new entry, re-encoded
    image.write_bytes(jpeg_bytes(colour=(255, 0, 255), size=(40, 40)))
    edited = _load(tmp_path, csv, check_images=check_images)
    assert edited.fingerprint != splits.fingerprint
    features, log = run(edited, tiny_models, tmp_path / "cache", split_names=["train"])
    assert features["train"].info["reused"] is False and features["train"].info["key"] != key
    assert "encoding" in log
    assert not np.array_equal(
        np.asarray(features["train"].image_tokens[0]), np.asarray(first["train"].image_tokens[0])
    )

    # touched only (same bytes, new mtime) -> a new entry too
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    touched = _load(tmp_path, csv, check_images=check_images)
    assert touched.fingerprint not in (splits.fingerprint, edited.fingerprint)
    again, _ = run(touched, tiny_models, tmp_path / "cache", split_names=["train"])
    assert again["train"].info["reused"] is False
