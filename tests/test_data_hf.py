"""The ``hf`` backend on generated Hugging Face datasets: a save_to_disk folder, Parquet files, an
imagefolder with metadata.jsonl; images as files (content-addressed, stored once), ClassLabel names,
split and column options, the offline Hub, and bad input named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fusionzoo.data.base import DataError
from fusionzoo.data.published_files import (
    HF_KINDS,
    write_hf_disk,
    write_hf_imagefolder,
    write_hf_parquet,
)
from fusionzoo.datasets import load_dataset
from fusionzoo.registry import create

COLUMNS = {"text_column": "caption", "label_column": "kind"}


def load(path, tmp_path, **options):
    return load_dataset("hf", path=str(path), data_dir=str(tmp_path / "data"), **{**COLUMNS, **options})


def test_a_saved_dataset_keeps_its_splits_classlabel_names_and_images(tmp_path):
    data = load(write_hf_disk(tmp_path / "disk"), tmp_path, val_split="validation")
    assert data.classes == list(HF_KINDS)
    assert (len(data.train), len(data.val), len(data.test)) == (24, 6, 9)
    row = data.test.iloc[0]
    assert row["item_id"] == "test:0" and row["text"] == "a bag photo number 30" and row["label"] == 0
    stored = tmp_path / "data" / "hf" / "images"
    assert row["image_path"].startswith(str(stored)) and row["image_path"].endswith(".png")
    assert Path(row["image_path"]).read_bytes()[:4] == b"\x89PNG"
    files = sorted(p for p in stored.rglob("*.png"))
    assert len(files) == 39  # one file per distinct image
    mtimes = [p.stat().st_mtime_ns for p in files]
    again = load(tmp_path / "disk", tmp_path, val_split="validation")
    assert again.fingerprint == data.fingerprint  # manifest reused, files not rewritten
    assert [p.stat().st_mtime_ns for p in files] == mtimes
    carved = load(tmp_path / "disk", tmp_path, val_fraction=0.25)
    assert len(carved.train) + len(carved.val) == 24 and carved.fingerprint != data.fingerprint


def test_identical_images_are_stored_once(tmp_path):
    from fusionzoo.data.published_files import png_bytes
    from fusionzoo.datasets._hf_images import store_bytes

    a = store_bytes(png_bytes((1, 2, 3)), tmp_path)
    assert store_bytes(png_bytes((1, 2, 3)), tmp_path) == a
    assert store_bytes(png_bytes((1, 2, 4)), tmp_path) != a
    import io

    from PIL import Image

    webp = io.BytesIO()
    Image.new("RGB", (4, 4), (9, 9, 9)).save(webp, format="WEBP")
    converted = store_bytes(webp.getvalue(), tmp_path)
    assert converted.endswith(".png") and Path(converted).read_bytes()[:4] == b"\x89PNG"
    assert "/undecodable/" in store_bytes(b"not an image", tmp_path)


def test_parquet_files_read_by_folder_or_by_named_files(tmp_path):
    folder = write_hf_parquet(tmp_path / "pq")
    by_folder = load(folder, tmp_path, val_split="validation")
    assert (len(by_folder.train), len(by_folder.val), len(by_folder.test)) == (24, 6, 9)
    named = load(
        folder, tmp_path, data_files=f"train={folder / 'train.parquet'};test={folder / 'validation.parquet'}"
    )
    assert len(named.test) == 6 and len(named.train) + len(named.val) == 24
    with pytest.raises(DataError, match="data_files item 'train' is not split=FILE"):
        load(folder, tmp_path, data_files="train")


def test_an_imagefolder_uses_its_files_in_place_and_text_labels(tmp_path):
    folder = write_hf_imagefolder(tmp_path / "imf")
    data = load(folder, tmp_path)
    assert data.classes == list(HF_KINDS)  # text labels: sorted
    assert all(p.startswith(str(folder.resolve())) for p in data.train["image_path"])
    assert not (tmp_path / "data" / "hf" / "images").exists() or not any(
        (tmp_path / "data" / "hf" / "images").rglob("*.png")
    )
    os.remove(folder / "test" / "30.png")
    with pytest.warns(UserWarning, match="image file is missing"):
        fewer = load(folder, tmp_path)
    assert len(fewer.test) == 8


def test_columns_splits_and_the_offline_hub_are_clear_errors(tmp_path, monkeypatch):
    folder = write_hf_disk(tmp_path / "disk")
    with pytest.raises(DataError, match="no column.* nope; its columns: image, caption, kind"):
        load(folder, tmp_path, label_column="nope")
    with pytest.raises(
        DataError, match=r"test_split='dev' is not one of its splits \(train, validation, test\)"
    ):
        load(folder, tmp_path, test_split="dev")
    with pytest.raises(DataError, match="needs --data-option path="):
        load_dataset("hf", data_dir=str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="not a local path and the Hub is offline"):
        load(tmp_path / "no-such" / "name", tmp_path, format="hub")
    backend = create("dataset", "hf")
    assert backend.status(path="someone/some-dataset").startswith("not loaded yet")
    assert backend.status(path=str(folder), data_dir=str(tmp_path), val_split="validation", **COLUMNS) == (
        "ready (24 train / 6 val / 9 test rows)"
    )


def test_an_unlabelled_split_is_dropped_or_refused(tmp_path):
    from datasets import load_from_disk

    folder = write_hf_disk(tmp_path / "disk")
    saved = load_from_disk(str(folder))
    test = saved["test"].map(lambda row, i: {"kind": -1 if i < 3 else row["kind"]}, with_indices=True)
    saved["test"] = test
    saved.save_to_disk(str(tmp_path / "partly"))
    with pytest.warns(UserWarning, match="3 row.* without a label dropped"):
        assert len(load(tmp_path / "partly", tmp_path).test) == 6
    saved["test"] = saved["test"].map(lambda row: {"kind": -1})
    saved.save_to_disk(str(tmp_path / "none"))
    with pytest.raises(DataError, match="has no labels in 'kind'"):
        load(tmp_path / "none", tmp_path)
