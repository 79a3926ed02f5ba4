"""Hateful Memes, UPMC Food-101 and N24News read from generated files in their published layouts, bad
files named in the errors, the "where to get it" status; and assemble_splits with a dataset's own
validation split."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fusionzoo.data.base import DataError
from fusionzoo.data.published_files import write_food101, write_hateful_memes, write_n24news
from fusionzoo.datasets import load_dataset
from fusionzoo.registry import create


# ------------------------------------------------------------------------------------- raw_val
def test_assemble_splits_uses_a_given_validation_split_as_is(tmp_path):
    from fusionzoo.data.loading import assemble_splits
    from fusionzoo.datasets._common import raw_frame

    def raw(ids, labels):
        return raw_frame(ids, [str(tmp_path / f"{i}.jpg") for i in ids], ids, labels, labels, range(len(ids)))

    for i in range(20):
        (tmp_path / f"{i}.jpg").write_bytes(b"\xff\xd8\xff")
    train = raw([str(i) for i in range(10)], ["a", "b"] * 5)
    val = raw(["9", "10", "11", "12", "19"], ["a", "b", "a", "c", "b"])  # 9 also in train, 19 also in test
    test = raw(["13", "14", "19"], ["a", "b", "b"])
    files = {s: tmp_path / "0.jpg" for s in ("train", "val", "test")}
    with pytest.warns(UserWarning):
        data = assemble_splits(
            name="x", root=tmp_path, raw_train=train, raw_test=test, raw_val=val, sources=files,
            label_map_locations=[tmp_path / "labels.json"], info={}, options={}, val_fraction=0.5,
        )  # fmt: skip
    assert data.val["item_id"].tolist() == ["9", "10", "11"]  # 12: label c unseen in train; 19: in test
    assert "9" not in set(data.train["item_id"]) and len(data.train) == 9  # val wins over train
    assert data.test["item_id"].tolist() == ["13", "14", "19"]
    carved = assemble_splits(
        name="x", root=tmp_path, raw_train=train, raw_test=test, sources=files,
        label_map_locations=[tmp_path / "labels.json"], info={}, options={}, val_fraction=0.5,
    )  # fmt: skip
    assert len(carved.val) + len(carved.train) == 10 and carved.fingerprint != data.fingerprint


# ----------------------------------------------------------------------------------- Hateful Memes
def test_hateful_memes_reads_the_release_files(tmp_path):
    root = write_hateful_memes(tmp_path / "hm")
    data = load_dataset("hateful_memes", root=root, data_dir=tmp_path)
    assert data.classes == ["not-hateful", "hateful"]
    assert (len(data.train), len(data.val), len(data.test)) == (24, 8, 10)  # val = dev_seen, test = test_seen
    first = json.loads((root / "dev_seen.jsonl").read_text().splitlines()[0])
    row = data.val.iloc[0]
    assert (
        row["item_id"] == str(first["id"]) and row["text"] == first["text"] and row["label"] == first["label"]
    )
    assert row["image_path"] == str((root / first["img"]).resolve())
    unseen = load_dataset(
        "hateful_memes", root=root, data_dir=tmp_path, val_split="dev_unseen", test_split="test_unseen"
    )
    assert set(unseen.test["item_id"]) == {
        str(json.loads(x)["id"]) for x in (root / "test_unseen.jsonl").open()
    }
    carved = load_dataset("hateful_memes", root=root, data_dir=tmp_path, val_split="none", val_fraction=0.25)
    assert len(carved.train) + len(carved.val) == 24
    # the data dir's default location: <data dir>/hateful_memes (or its data/ subfolder)
    write_hateful_memes(tmp_path / "dd" / "hateful_memes" / "data")
    assert len(load_dataset("hateful_memes", data_dir=tmp_path / "dd").test) == 10


def test_hateful_memes_bad_files_are_named(tmp_path):
    root = write_hateful_memes(tmp_path / "hm")
    (root / "test_seen.jsonl").write_text('{"id": 1, "img": "img/1.png", "text": "no label"}\n')
    with pytest.raises(DataError, match=r"test_seen\.jsonl line 1 \(id 1\): no label"):
        load_dataset("hateful_memes", root=root, data_dir=tmp_path)
    (root / "test_seen.jsonl").write_text('{"id": 1, "img": "img/1.png", "label": 0, "text": "x"}\n{oops\n')
    with pytest.raises(DataError, match=r"test_seen\.jsonl line 2: not a JSON object"):
        load_dataset("hateful_memes", root=root, data_dir=tmp_path)
    (root / "test_seen.jsonl").write_text('{"id": 1, "img": "../../etc/passwd", "label": 0, "text": "x"}\n')
    with pytest.raises(DataError, match="escapes the image folder"):
        load_dataset("hateful_memes", root=root, data_dir=tmp_path)
    with pytest.raises(DataError, match="val_split='dev_sen': expected one of"):
        load_dataset("hateful_memes", root=root, data_dir=tmp_path, val_split="dev_sen")


def test_hateful_memes_status_says_it_is_licence_gated(tmp_path):
    backend = create("dataset", "hateful_memes")
    line = backend.status(data_dir=str(tmp_path))
    assert line.startswith("missing:") and "licence" in line and str(tmp_path / "hateful_memes") in line
    root = write_hateful_memes(tmp_path / "hm")
    assert backend.status(root=str(root), data_dir=str(tmp_path)) == "ready (24 train / 8 val / 10 test rows)"
    (root / "img" / "10000.png").unlink()
    report = backend.verify(root=str(root), data_dir=str(tmp_path))
    assert not report["ok"]  # reported, not dropped by the skip policy before the check
    assert report["image_problems"][["item_id", "problem"]].values.tolist() == [["10000", "missing"]]


# ---------------------------------------------------------------------------------- UPMC Food-101
@pytest.mark.parametrize("header", [False, True])
def test_food101_reads_the_titles_csvs_with_or_without_a_header(tmp_path, header):
    root = write_food101(tmp_path / "food", header=header)
    data = load_dataset("food101", root=root, data_dir=tmp_path, val_fraction=0.2)
    assert data.classes == ["apple_pie", "caesar_salad", "ramen"]
    assert len(data.train) + len(data.val) == 30 and len(data.test) == 12
    row = data.test.loc[data.test["item_id"] == "test:ramen_2.jpg"].iloc[0]
    assert row["text"] == 'Best ramen recipe, "easy" #2' and data.classes[row["label"]] == "ramen"
    assert row["image_path"] == str((root / "images" / "test" / "ramen" / "ramen_2.jpg").resolve())


def test_food101_bad_rows_and_missing_data_are_clear(tmp_path):
    root = write_food101(tmp_path / "food")
    csv = root / "texts" / "test_titles.csv"
    csv.write_text(csv.read_text() + "extra.jpg,a,b,c\n")
    with pytest.raises(DataError, match=r"test_titles\.csv is not a CSV of rows image_name,text,label"):
        load_dataset("food101", root=root, data_dir=tmp_path)
    csv.write_text("x.jpg,text,../up\n")
    with pytest.raises(DataError, match=r"line 1: label '\.\./up' is empty or not a class folder name"):
        load_dataset("food101", root=root, data_dir=tmp_path)
    with pytest.raises(DataError, match=r"no texts/train_titles\.csv under .*Kaggle"):
        load_dataset("food101", data_dir=tmp_path / "empty")


# ----------------------------------------------------------------------------------------- N24News
def test_n24news_reads_the_release_and_joins_the_chosen_text_fields(tmp_path):
    root = write_n24news(tmp_path / "n24")
    data = load_dataset("n24news", root=root, data_dir=tmp_path)
    assert data.classes == ["Art & Design", "Books", "Health", "Science"]
    assert (len(data.train), len(data.val), len(data.test)) == (32, 8, 12)
    article = json.loads((root / "news" / "nytimes_test.json").read_text())[0]
    row = data.test.loc[data.test["item_id"] == article["image_id"]].iloc[0]
    assert row["text"] == article["headline"]
    assert row["image_path"] == str((root / "imgs" / f"{article['image_id']}.jpg").resolve())
    both = load_dataset("n24news", root=root, data_dir=tmp_path, text_field="caption+body")
    row = both.test.loc[both.test["item_id"] == article["image_id"]].iloc[0]
    assert row["text"] == article["caption"] + "\n" + article["article"].strip()
    listed = load_dataset("n24news", root=root, data_dir=tmp_path, text_field=["caption", "body"])
    assert listed.fingerprint == both.fingerprint and both.fingerprint != data.fingerprint


def test_n24news_errors_name_the_field_and_article(tmp_path):
    root = write_n24news(tmp_path / "n24")
    with pytest.raises(
        DataError, match="text_field=.*expected one or more of headline, abstract, caption, body"
    ):
        load_dataset("n24news", root=root, data_dir=tmp_path, text_field="title")
    articles = json.loads((root / "news" / "nytimes_dev.json").read_text())
    del articles[3]["section"]
    (root / "news" / "nytimes_dev.json").write_text(json.dumps(articles))
    with pytest.raises(DataError, match=r"nytimes_dev\.json article #3 .*no section"):
        load_dataset("n24news", root=root, data_dir=tmp_path)
    carved = load_dataset("n24news", root=root, data_dir=tmp_path, val_split="none")  # dev is not read
    assert len(carved.train) + len(carved.val) == 32


def test_published_backends_fingerprint_an_edited_text(tmp_path):
    root = write_n24news(tmp_path / "n24")
    before = load_dataset("n24news", root=root, data_dir=tmp_path)
    path = root / "news" / "nytimes_train.json"
    articles = json.loads(path.read_text())
    articles[0]["headline"] = "changed"
    path.write_text(json.dumps(articles))
    after = load_dataset("n24news", root=root, data_dir=tmp_path)
    assert after.fingerprint != before.fingerprint
    assert np.array_equal(after.train["label"], before.train["label"])
    assert isinstance(after.train, pd.DataFrame)
