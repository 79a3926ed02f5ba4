"""User image-text CSVs go through the same code path as GLAMI (validation, labels, splits)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fusionzoo.data import DataError, DataWarning
from fusionzoo.data.base import COLUMNS
from fusionzoo.data.glami_files import jpeg_bytes
from fusionzoo.datasets import load_dataset


def make_csv(folder, n=40, *, name="train.csv", labels=("cat", "dog", "bird", "dog"), start=0, images=True):
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(start, start + n):
        path = f"img/{i}.jpg"
        if images:
            (folder / path).write_bytes(jpeg_bytes())
        rows.append({"id": f"x{i}", "photo": path, "title": f"title {i}", "body": f"body {i}" if i % 3 else None,
                     "y": labels[i % len(labels)], "market": "cz" if i % 2 else "sk"})  # fmt: skip
    pd.DataFrame(rows).to_csv(folder / name, index=False)
    return folder / name


def load(folder, **options):
    defaults = dict(image_col="photo", text_cols=["title", "body"], label_col="y", data_dir=folder / "cache")
    return load_dataset("csv", **{**defaults, **options})


def test_train_and_test_csv(tmp_path):
    train = make_csv(tmp_path)
    test = make_csv(tmp_path, 8, name="test.csv", start=100)
    splits = load(tmp_path, csv=f"{train},{test}", item_id_col="id", geo_col="market")
    assert [list(f.columns) for f in (splits.train, splits.val, splits.test)] == [list(COLUMNS)] * 3
    assert splits.classes == ["bird", "cat", "dog"]  # text labels: sorted
    assert len(splits.test) == 8 and len(splits.train) + len(splits.val) == 40
    row = splits.test.set_index("item_id").loc["x101"]
    assert row["text"] == "title 101\nbody 101" and row["geo"] == "cz" and row["label_source"] == "unknown"
    assert splits.test.set_index("item_id").loc["x102", "text"] == "title 102"  # NaN body → ""
    assert row["image_path"] == str((tmp_path / "img" / "101.jpg").resolve())
    stored = next((tmp_path / "cache" / "labelmaps").glob("csv-*.json"))
    assert [c["raw_label"] for c in json.loads(stored.read_text())["classes"]] == ["bird", "cat", "dog"]


def test_single_csv_carves_a_stratified_test_split_and_numeric_labels_sort_numerically(tmp_path):
    train = make_csv(tmp_path, 60, labels=("10", "9", "100"))
    splits = load(tmp_path, csv=str(train), test_fraction=0.2)
    assert splits.classes == ["9", "10", "100"]
    assert splits.test["label"].value_counts().to_dict() == {0: 4, 1: 4, 2: 4}
    assert set(splits.test["item_id"]).isdisjoint(splits.train["item_id"])
    assert splits.train["item_id"].str.startswith("train:").all()
    assert load(tmp_path, csv=str(train), test_fraction=0.2).fingerprint == splits.fingerprint


def test_shares_split_and_limit_logic(tmp_path):
    train = make_csv(tmp_path, 80)
    splits = load(tmp_path, csv=str(train), limit=20, geos=["cz"], geo_col="market")
    assert len(splits.train) <= 20 and set(splits.train["geo"]) == {"cz"}
    with pytest.raises(DataError, match="no train rows left"):
        load(tmp_path, csv=str(train), label_source="human")


def test_missing_file_and_column_are_named(tmp_path):
    with pytest.raises(
        DataError,
        match=r"train CSV: file .*nope.csv not found \(expected a CSV with columns photo, title, body, y\)",
    ):
        load(tmp_path, csv=str(tmp_path / "nope.csv"))
    train = make_csv(tmp_path, 10)
    with pytest.raises(
        DataError, match=r"train.csv lacks column\(s\) caption; expected photo, caption, y, found id, photo"
    ):
        load(tmp_path, csv=str(train), text_cols="caption")
    with pytest.raises(DataError, match="unknown csv option"):
        load(tmp_path, csv=str(train), size=3)


def test_image_path_escaping_root_and_absolute_paths_are_rejected(tmp_path):
    train = make_csv(tmp_path, 10)
    frame = pd.read_csv(train)
    frame.loc[4, "photo"] = "img/../../secret.jpg"
    frame.to_csv(train, index=False)
    with pytest.raises(
        DataError, match=r"line 6 \(item_id train:6\): image 'img/../../secret.jpg' escapes the image folder"
    ):
        load(tmp_path, csv=str(train))
    frame.loc[4, "photo"] = str(tmp_path / "img" / "1.jpg")
    frame.to_csv(train, index=False)
    with pytest.raises(DataError, match="escapes the image folder"):
        load(tmp_path, csv=str(train))


def test_missing_images_and_empty_labels(tmp_path):
    train = make_csv(tmp_path, 20)
    (tmp_path / "img" / "3.jpg").unlink()
    with pytest.warns(DataWarning, match=r"1 row\(s\) skipped because the image file is missing"):
        splits = load(tmp_path, csv=str(train), item_id_col="id")
    assert "x3" not in set(splits.train["item_id"]) | set(splits.val["item_id"]) | set(splits.test["item_id"])
    with pytest.raises(DataError, match="x3 does not exist"):
        load(tmp_path, csv=str(train), item_id_col="id", on_bad_image="fail")
    frame = pd.read_csv(train)
    frame.loc[2, "y"] = None
    frame.to_csv(train, index=False)
    with pytest.raises(DataError, match=r"line 4: empty label in column 'y'"):
        load(tmp_path, csv=str(train))


def test_image_root_option(tmp_path):
    images = tmp_path / "elsewhere"
    train = make_csv(tmp_path / "csvs", 12)
    images.mkdir()
    (tmp_path / "csvs" / "img").rename(images / "img")
    splits = load(tmp_path, csv=str(train), image_root=images)
    assert splits.train["image_path"].str.startswith(str(images.resolve())).all()
    with pytest.raises(DataError, match="image root .* is not a folder"):
        load(tmp_path, csv=str(train), image_root=tmp_path / "missing")


def test_byte_order_mark_is_tolerated(tmp_path):
    train = make_csv(tmp_path, 12)
    train.write_bytes(b"\xef\xbb\xbf" + train.read_bytes())
    splits = load(tmp_path, csv=str(train), item_id_col="id")
    assert splits.train["item_id"].str.startswith("x").all()


def test_a_whole_number_written_with_a_decimal_point_is_one_class_with_a_warning(tmp_path):
    train = make_csv(tmp_path, 40, labels=("3", "3.0", "4", "4.00"))
    with pytest.warns(
        DataWarning, match=r"20 label\(s\) in column 'y' are whole numbers written with a decimal"
    ):
        splits = load(tmp_path, csv=str(train))
    assert splits.classes == ["3", "4"]  # was 4 classes: '3', '3.0', '4', '4.00'


def test_one_number_spelt_two_other_ways_is_refused_naming_both(tmp_path):
    train = make_csv(tmp_path, 40, labels=("3", "03", "4"))
    with pytest.raises(
        DataError,
        match=r"train.csv: the labels '3' \(line 2\) and '03' \(line 3\) in column 'y' are the same number 3 "
        r"written two ways",
    ):
        load(tmp_path, csv=str(train))


def test_a_label_that_is_not_utf8_is_refused_naming_file_line_and_value(tmp_path):
    train = make_csv(tmp_path, 40, labels=("café", "tea"))
    train.write_bytes(train.read_bytes().replace("café".encode(), "café".encode("latin-1"), 3))
    with pytest.raises(
        DataError,
        match="train.csv line 2: the label 'caf\ufffd' in column 'y' has bytes that are not valid UTF-8 "
        r"\(shown as U\+FFFD; 3 row\(s\)\)",
    ):
        load(tmp_path, csv=str(train))  # was a class 'caf\ufffd' beside 'café'


def test_a_csv_in_a_missing_folder_is_named_not_the_image_root(tmp_path):
    missing = tmp_path / "nowhere" / "train.csv"
    with pytest.raises(
        DataError, match=r"train CSV: file .*train.csv not found: its folder .*nowhere does not"
    ):
        load(tmp_path, csv=str(missing))  # was "image root .../nowhere is not a folder"
    train = make_csv(tmp_path, 12)
    with pytest.raises(DataError, match=r"test CSV: file .*test.csv not found: its folder"):
        load(tmp_path, csv=f"{train},{missing.with_name('test.csv')}")


def test_a_symbolic_link_out_of_the_image_folder_is_refused(tmp_path):
    data, outside = tmp_path / "data", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(jpeg_bytes())
    train = make_csv(data, 12)
    (data / "img" / "1.jpg").unlink()
    (data / "img" / "1.jpg").symlink_to(outside / "secret.jpg")
    with pytest.raises(
        DataError,
        match=r"line 3 \(item_id train:3\): image 'img/1.jpg' is reached through a symbolic link and lies at "
        r".*outside/secret.jpg, outside the image folder",
    ):
        load(tmp_path, csv=str(train))  # was: read, the containment check was lexical
    (data / "img" / "1.jpg").unlink()
    (data / "img" / "1.jpg").symlink_to(data / "img" / "2.jpg")  # a link that stays inside is fine
    assert len(load(tmp_path, csv=str(train)).train) > 0
    frame = pd.read_csv(train)  # a linked folder on the way out
    (data / "elsewhere").symlink_to(outside, target_is_directory=True)
    frame.loc[6, "photo"] = "elsewhere/secret.jpg"
    frame.to_csv(train, index=False)
    with pytest.raises(
        DataError, match=r"line 8 \(item_id train:8\): image 'elsewhere/secret.jpg' is reached"
    ):
        load(tmp_path, csv=str(train))
