"""The GLAMI-1M loader on GLAMI-format fixtures: layout, labels, splits, filters and every bad input."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fusionzoo.data import DataError, DataWarning
from fusionzoo.data.base import COLUMNS
from fusionzoo.data.glami import LABEL_MAP_FILE, load_glami
from fusionzoo.data.glami_files import glami_rows, write_glami
from fusionzoo.data.images import BadImageError, BadImageReport, ImageTextDataset, collate_items
from fusionzoo.datasets import load_dataset


@pytest.fixture
def glami(tmp_path):
    """60 train rows over categories 7/42/13 (+ one rare 99), 12 test rows; returns the root."""
    train = glami_rows(60) + glami_rows(3, categories=(99,), start=60)
    write_glami(tmp_path / "root", train, glami_rows(12, split="test", start=100))
    return tmp_path / "root"


def load(root, **options):
    options.setdefault("data_dir", root.parent / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # a clean fixture must load without warnings
        return load_glami(root, **options)


def test_loads_official_layout_and_folder_itself(glami):
    splits = load(glami)
    assert [list(f.columns) for f in (splits.train, splits.val, splits.test)] == [list(COLUMNS)] * 3
    assert len(splits.train) + len(splits.val) == 63 and len(splits.test) == 12
    assert load(glami / "GLAMI-1M-dataset").fingerprint == splits.fingerprint
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in splits.train["image_path"])


def test_text_and_nan_handling(glami):
    splits = load(glami, val_fraction=0)
    frame = splits.train.set_index("item_id")
    assert frame.loc["1000", "text"] == "item 0 word7"  # description NaN → name only
    assert frame.loc["1001", "text"] == "item 1 word42\ndescription 1"
    assert frame.loc["1002", "label_source"] == "unknown"  # NaN label_source
    assert not frame.loc["1002", "is_human"] and frame.loc["1000", "is_human"]
    names_only = load(glami, val_fraction=0, text_fields=("name",))
    assert names_only.train.set_index("item_id").loc["1001", "text"] == "item 1 word42"
    assert names_only.fingerprint != splits.fingerprint
    with pytest.raises(DataError, match="not GLAMI columns"):
        load(glami, text_fields=("title",))


def test_label_map_is_sorted_category_ids_and_stored(glami):
    splits = load(glami)
    assert splits.classes == ["class-7", "class-13", "class-42", "class-99"]
    stored = json.loads((glami / "GLAMI-1M-dataset" / LABEL_MAP_FILE).read_text())
    assert [c["raw_label"] for c in stored["classes"]] == ["7", "13", "42", "99"]
    assert splits.info["label_map_path"].endswith(LABEL_MAP_FILE)
    # the stored map wins while it covers train: filters never change label ids
    human = load(glami, label_source="human", geos=["cz", "sk"])
    assert human.classes == splits.classes
    frame = human.train
    assert (
        frame["label"]
        .map(lambda i: human.classes[i])
        .eq("class-" + frame["text"].str.extract(r"word(\d+)")[0])
        .all()
    )


def test_label_map_falls_back_to_cache_dir_when_dataset_is_read_only(glami, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    folder = glami / "GLAMI-1M-dataset"
    folder.chmod(0o555)
    try:
        splits = load(glami, data_dir=tmp_path / "cache")
    finally:
        folder.chmod(0o755)
    assert str(tmp_path / "cache" / "labelmaps") in splits.info["label_map_path"]


def test_missing_csv_and_missing_column_are_named(tmp_path, glami):
    with pytest.raises(DataError, match=r"no GLAMI-1M dataset under .*GLAMI-1M-train.csv"):
        load_glami(tmp_path / "nowhere", data_dir=tmp_path)
    (glami / "GLAMI-1M-dataset" / "GLAMI-1M-test.csv").unlink()
    with pytest.raises(DataError, match=r"test split: file .*GLAMI-1M-test.csv not found.*item_id, image_id"):
        load(glami)
    write_glami(glami, glami_rows(5), glami_rows(3, split="test", start=50))
    train = glami / "GLAMI-1M-dataset" / "GLAMI-1M-train.csv"
    pd.read_csv(train).drop(columns=["category_name"]).to_csv(train, index=False)
    with pytest.raises(DataError, match=r"GLAMI-1M-train.csv lacks column\(s\) category_name"):
        load(glami)


def test_image_id_escaping_images_folder_is_rejected_naming_the_row(tmp_path):
    rows = glami_rows(6)
    rows[3]["image_id"] = "../../etc/passwd"
    write_glami(tmp_path, rows, glami_rows(3, split="test", start=50))
    with pytest.raises(DataError, match=r"line 5 \(item_id 1003\).*escapes the image folder"):
        load_glami(tmp_path, data_dir=tmp_path / "c")
    rows[3]["image_id"] = "/abs/path"
    write_glami(tmp_path, rows, glami_rows(3, split="test", start=50))
    with pytest.raises(DataError, match="escapes the image folder"):
        load_glami(tmp_path, data_dir=tmp_path / "c")


def test_unseen_test_labels_are_reported_not_silently_dropped(tmp_path):
    test = glami_rows(6, split="test", start=50) + glami_rows(2, split="test", categories=(555,), start=80)
    write_glami(tmp_path, glami_rows(30), test)
    with pytest.warns(DataWarning, match=r"2 test row\(s\) have a label never seen in train.*555 \(2 rows\)"):
        splits = load_glami(tmp_path, data_dir=tmp_path / "c")
    assert splits.info["unseen_test_labels"] == {"555": 2}
    assert len(splits.test) == 6 and "class-555" not in splits.classes


def test_duplicate_item_ids_are_dropped_with_a_warning(tmp_path):
    rows = glami_rows(20)
    rows[5]["item_id"] = rows[4]["item_id"]
    test = glami_rows(4, split="test", start=50)
    test[0]["item_id"] = rows[0]["item_id"]  # also in train: removed from train, test kept intact
    write_glami(tmp_path, rows, test)
    with pytest.warns(DataWarning) as record:
        splits = load_glami(tmp_path, data_dir=tmp_path / "c", val_fraction=0)
    messages = " ".join(str(w.message) for w in record)
    assert "1 duplicate item_id row(s) dropped, first occurrence kept (item_ids 1004)" in messages
    assert "occur in both train and test; removed from train (item_ids 1000)" in messages
    assert len(splits.train) == 18 and len(splits.test) == 4
    assert splits.train["item_id"].is_unique


def test_empty_text_is_counted(tmp_path):
    rows = glami_rows(12)
    rows[2]["name"], rows[2]["description"] = None, None
    write_glami(tmp_path, rows, glami_rows(3, split="test", start=50))
    with pytest.warns(DataWarning, match=r"train: 1 row\(s\) have an empty text.*1002"):
        splits = load_glami(tmp_path, data_dir=tmp_path / "c", val_fraction=0)
    assert splits.info["empty_text"] == {"train": 1}
    assert splits.train.set_index("item_id").loc["1002", "text"] == ""


def test_non_utf8_bytes_are_replaced_and_counted_with_line(tmp_path):
    dataset = write_glami(tmp_path, glami_rows(8), glami_rows(3, split="test", start=50))
    csv = dataset / "GLAMI-1M-train.csv"
    raw = csv.read_bytes().replace(b"item 3 word7", b"item 3 \xff\xfeword7")
    csv.write_bytes(raw)
    with pytest.warns(DataWarning, match=r"1 row\(s\) contain bytes that are not valid UTF-8.*lines 5"):
        splits = load_glami(tmp_path, data_dir=tmp_path / "c", val_fraction=0)
    assert "\ufffd" in splits.train.set_index("item_id").loc["1003", "text"]
    assert splits.info["non_utf8_rows"] == {str(csv): 1}


def test_missing_image_skip_counts_and_fail_names_file(tmp_path):
    dataset = write_glami(tmp_path, glami_rows(20), glami_rows(4, split="test", start=50))
    (dataset / "images" / "5003.jpg").unlink()
    (dataset / "images" / "5007.jpg").unlink()
    with pytest.warns(
        DataWarning,
        match=r"train: 2 row\(s\) skipped because the image file is missing \(item_ids 1003, 1007\)",
    ):
        splits = load_glami(tmp_path, data_dir=tmp_path / "c", val_fraction=0)
    assert len(splits.train) == 18 and splits.info["missing_images"] == {"train": 2}
    with pytest.raises(DataError, match=r"image file .*5003.jpg of item_id 1003 does not exist"):
        load_glami(tmp_path, data_dir=tmp_path / "c", val_fraction=0, on_bad_image="fail")


def test_corrupt_image_skip_and_fail(tmp_path):
    dataset = write_glami(tmp_path, glami_rows(6), glami_rows(3, split="test", start=50))
    (dataset / "images" / "5001.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    splits = load_glami(tmp_path, data_dir=tmp_path / "c", val_fraction=0)
    frame = splits.train
    items = [ImageTextDataset(frame)[i] for i in range(len(frame))]
    bad = [item for item in items if not item["ok"]]
    assert [item["item_id"] for item in bad] == ["1001"] and bad[0]["image"] is None
    batch = collate_items(items)
    assert len(batch["image"]) == len(frame) - 1 and batch["label"].shape == (len(frame) - 1,)
    report = BadImageReport("skip", context="train")
    report.add_items(batch["bad"])
    with pytest.warns(
        DataWarning, match=r"train: 1 item\(s\) skipped because their image is unreadable \(item_ids 1001\)"
    ):
        report.warn()
    strict = ImageTextDataset(frame, on_bad_image="fail")
    index = frame.index[frame["item_id"] == "1001"][0]
    with pytest.raises(BadImageError, match=r"5001.jpg of item_id 1001"):
        strict[index]
    with pytest.raises(BadImageError, match="item_id 9"):
        BadImageReport("fail").add("9", "/x.jpg")


def test_draft_mode_decodes_at_reduced_size(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (512, 400), (10, 200, 30)).save(path, quality=90)
    frame = pd.DataFrame({"item_id": ["a"], "image_path": [str(path)], "text": ["t"], "label": [0]})

    class Identity:
        target_size = 100

        def __call__(self, image):
            return image

    item = ImageTextDataset(frame, transform=Identity())[0]
    assert item["ok"] and item["image"].size == (128, 100)  # libjpeg scale 1/4, still ≥ 100
    import torchvision.transforms as T

    tensor = ImageTextDataset(frame, transform=T.Compose([T.Resize((64, 64)), T.ToTensor()]))[0]["image"]
    assert tuple(tensor.shape) == (3, 64, 64)
    assert ImageTextDataset(frame)[0]["image"].size == (512, 400)


def test_filters_label_source_and_geo(glami):
    splits = load(glami, label_source="human", val_fraction=0)
    assert splits.train["is_human"].all() and (splits.train["label_source"] != "unknown").all()
    geo = load(glami, geos=["CZ", "hu"], val_fraction=0)
    assert set(geo.train["geo"]) == {"cz", "hu"} and set(geo.test["geo"]) <= {"cz", "hu"}
    with pytest.raises(DataError, match=r"geo\(s\) xx not in the dataset; present geos: cz, gr, hu, sk"):
        load(glami, geos=["xx"])
    with pytest.raises(DataError, match="label_source must be one of"):
        load(glami, label_source="robots")


def test_validation_split_is_seeded_and_stratified(glami):
    a, b, c = (
        load(glami, seed=0, val_fraction=0.2),
        load(glami, seed=0, val_fraction=0.2),
        load(glami, seed=5, val_fraction=0.2),
    )
    assert a.val["item_id"].tolist() == b.val["item_id"].tolist()
    assert a.val["item_id"].tolist() != c.val["item_id"].tolist()
    assert sorted(a.val["label"].value_counts().to_dict().items()) == [(0, 4), (1, 4), (2, 4), (3, 1)]
    assert a.split_fingerprint("val") != c.split_fingerprint("val")


def test_limit_and_per_class_cap_keep_the_distribution(tmp_path):
    rows = glami_rows(200, categories=(1, 1, 1, 1, 2, 2, 3, 4))  # 50 % / 25 % / 12.5 % / 12.5 %
    write_glami(tmp_path, rows, glami_rows(80, split="test", categories=(1, 1, 1, 1, 2, 2, 3, 4), start=500))
    full = load_glami(tmp_path, data_dir=tmp_path / "c", val_fraction=0.1)
    small = load_glami(tmp_path, data_dir=tmp_path / "c", val_fraction=0.1, limit=40)
    assert len(small.train) == 40
    assert small.train["label"].value_counts().sort_index().tolist() == [20, 10, 5, 5]
    assert len(small.test) == round(80 * 40 / len(full.train))  # val/test scaled by the same ratio
    assert set(small.train["item_id"]) <= set(full.train["item_id"])
    capped = load_glami(tmp_path, data_dir=tmp_path / "c", val_fraction=0.1, per_class_cap=10)
    assert capped.train["label"].value_counts().max() == 10
    assert small.fingerprint not in {full.fingerprint, capped.fingerprint}


def test_fingerprint_tracks_files_and_options(glami):
    first = load(glami)
    assert load(glami).fingerprint == first.fingerprint
    assert load(glami, seed=1).fingerprint != first.fingerprint
    csv = glami / "GLAMI-1M-dataset" / "GLAMI-1M-test.csv"
    stat = csv.stat()
    os.utime(csv, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert load(glami).fingerprint != first.fingerprint


def test_load_dataset_glami1m_from_data_dir(glami, tmp_path):
    data_dir = tmp_path / "data"
    (data_dir / "glami1m").mkdir(parents=True)
    os.rename(glami / "GLAMI-1M-dataset", data_dir / "glami1m" / "GLAMI-1M-dataset")
    splits = load_dataset("glami1m", data_dir=data_dir, val_fraction=0.1)
    assert splits.name == "glami1m" and splits.num_classes == 4
    explicit = load_dataset("glami1m", root=data_dir / "glami1m", data_dir=data_dir)
    assert explicit.fingerprint == splits.fingerprint
    with pytest.raises(DataError, match="unknown glami1m option"):
        load_dataset("glami1m", data_dir=data_dir, colour="red")
    assert np.issubdtype(splits.train["label"].dtype, np.integer)


def test_target_size_of_common_transforms():
    import torchvision.transforms as T

    from fusionzoo.data.images import target_size_of

    assert target_size_of(T.Compose([T.Resize(248), T.CenterCrop(224)])) == (248, 248)
    assert target_size_of(T.Resize((100, 50))) == (50, 100)  # torchvision (h, w) → PIL (w, h)
    assert target_size_of(T.ToTensor()) is None
