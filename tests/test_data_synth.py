"""The embedded synthetic dataset: GLAMI layout, determinism, caching, realism knobs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fusionzoo.data import DataError
from fusionzoo.data.base import COLUMNS
from fusionzoo.data.glami import GLAMI_COLUMNS, GLAMI_GEOS, load_glami
from fusionzoo.data.images import ImageTextDataset
from fusionzoo.data.synth_files import PARAMS_FILE, SynthConfig, ensure_synth
from fusionzoo.datasets import load_dataset

SMALL = SynthConfig(size=240, image_size=32)


@pytest.fixture(scope="module")
def small_synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "small"
    return ensure_synth(SMALL, out)


def test_layout_is_exactly_glami(small_synth):
    dataset = small_synth / "GLAMI-1M-dataset"
    train = pd.read_csv(dataset / "GLAMI-1M-train.csv")
    test = pd.read_csv(dataset / "GLAMI-1M-test.csv")
    assert list(train.columns) == list(GLAMI_COLUMNS) == list(test.columns)
    assert len(train) + len(test) == SMALL.size
    assert set(train["geo"]) <= set(GLAMI_GEOS)
    assert len(set(train["geo"])) >= 10  # many of the 13 languages appear even in a tiny set
    # label_source NaN ("unknown") only in train, ~25 %
    assert 0.12 < train["label_source"].isna().mean() < 0.38
    assert test["label_source"].notna().all()
    # category ids are not contiguous, like GLAMI
    categories = sorted(train["category"].unique())
    assert categories != list(range(categories[0], categories[0] + len(categories)))
    # every image_id has a JPEG; some images are shared by several listings
    ids = pd.concat([train["image_id"], test["image_id"]])
    for image_id in ids.unique()[:50]:
        assert (dataset / "images" / f"{image_id}.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert ids.duplicated().any()
    assert train["description"].isna().any()  # some empty descriptions, as in GLAMI


def test_loads_through_the_glami_loader(small_synth):
    splits = load_glami(small_synth, val_fraction=0.1, seed=0, data_dir=small_synth.parent)
    assert splits.num_classes == SMALL.num_classes
    for frame in (splits.train, splits.val, splits.test):
        assert list(frame.columns) == list(COLUMNS)
        assert frame["label"].between(0, splits.num_classes - 1).all()
    assert set(splits.val["item_id"]).isdisjoint(splits.train["item_id"])
    assert (splits.train["label_source"] == "unknown").any()
    item = ImageTextDataset(splits.train)[0]
    assert item["ok"] and item["image"].size == (32, 32)


def test_deterministic_and_seed_dependent(tmp_path):
    a = ensure_synth(SMALL, tmp_path / "a")
    b = ensure_synth(SMALL, tmp_path / "b")
    c = ensure_synth(SynthConfig(size=240, image_size=32, seed=1), tmp_path / "c")
    read = lambda p: (p / "GLAMI-1M-dataset" / "GLAMI-1M-train.csv").read_bytes()  # noqa: E731
    assert read(a) == read(b)
    assert read(a) != read(c)
    first = sorted((a / "GLAMI-1M-dataset" / "images").iterdir())[0]
    assert first.read_bytes() == (b / "GLAMI-1M-dataset" / "images" / first.name).read_bytes()


def test_cached_until_parameters_change(tmp_path):
    out = ensure_synth(SMALL, tmp_path / "d")
    csv = out / "GLAMI-1M-dataset" / "GLAMI-1M-train.csv"
    mtime = csv.stat().st_mtime_ns
    assert ensure_synth(SMALL, tmp_path / "d") == out
    assert csv.stat().st_mtime_ns == mtime  # reused, not regenerated
    params = json.loads((out / PARAMS_FILE).read_text())
    assert params["hash"] == SMALL.params_hash()
    bigger = SynthConfig(size=300, image_size=32)
    ensure_synth(bigger, tmp_path / "d")
    assert len(pd.read_csv(csv)) + len(pd.read_csv(csv.with_name("GLAMI-1M-test.csv"))) == 300
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_refuses_to_overwrite_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(DataError, match="not a fusionzoo synthetic dataset"):
        ensure_synth(SMALL, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"


def test_load_dataset_synth_uses_data_dir_cache(tmp_path):
    splits = load_dataset("synth", data_dir=tmp_path, size=240, image_size=32, limit=100)
    assert len(splits.train) == 100
    assert splits.name == "synth"
    assert (tmp_path / "synth").is_dir()
    again = load_dataset("synth", data_dir=tmp_path, size=240, image_size=32, limit=100)
    assert again.fingerprint == splits.fingerprint
    assert again.train["item_id"].tolist() == splits.train["item_id"].tolist()
    other = load_dataset("synth", data_dir=tmp_path, size=240, image_size=32, limit=100, seed=1)
    assert other.fingerprint != splits.fingerprint
    with pytest.raises(DataError, match="unknown synth option"):
        load_dataset("synth", data_dir=tmp_path, colours=3)


def test_class_needs_both_modalities(small_synth):
    """A class is an (image key, text key) pair: the text alone never fixes colour/shape and vice versa."""
    splits = load_glami(small_synth, data_dir=small_synth.parent)
    names = pd.Series(splits.classes)
    parts = names.str.split("-", expand=True)  # gender-colour-material-shape
    assert parts[[1, 3]].drop_duplicates().shape[0] == SMALL.image_keys
    assert parts[[0, 2]].drop_duplicates().shape[0] == SMALL.text_keys
    # no colour word of the class name appears in the texts (colour is visible only in the image)
    text = " ".join(splits.train["text"]).lower()
    assert "red" not in text.split() and "blue" not in text.split()


def test_label_noise_only_on_unknown_rows(tmp_path):
    config = SynthConfig(size=400, image_size=16, noise_rate=1.0, unknown_fraction=0.5)
    from fusionzoo.data.synth_files import build_listings

    _, listings = build_listings(config)
    noisy = listings[listings["noisy"]]
    assert len(noisy) > 0
    assert (noisy["label_source"] == "unknown").all()
    assert (noisy["given_class"] != noisy["class"]).all()
    clean = listings[~listings["noisy"]]
    assert (clean["given_class"] == clean["class"]).all()


def test_long_tail_is_configurable():
    from fusionzoo.data.synth_files import build_listings

    _, steep = build_listings(SynthConfig(size=2000, image_size=16, zipf=1.2))
    _, flat = build_listings(SynthConfig(size=2000, image_size=16, zipf=0.0))
    steep_counts = np.sort(steep["class"].value_counts().to_numpy())
    flat_counts = np.sort(flat["class"].value_counts().to_numpy())
    assert steep_counts[-1] / steep_counts[0] > 10
    assert flat_counts[-1] / flat_counts[0] < 3


def test_invalid_config_is_explained():
    with pytest.raises(DataError, match="n_colours"):
        SynthConfig(n_colours=9)
    with pytest.raises(DataError, match="too small"):
        SynthConfig(size=10)


def test_validation_never_shows_a_training_image(tmp_path):
    """Items sharing an image file land on one side of the train/validation carve-out (before, ~all
    validation images of a set with shared images were also training images, so early stopping rewarded
    memorisation)."""
    from fusionzoo.data.loading import stratified_split

    splits = load_dataset("synth", data_dir=tmp_path, size=480, image_size=16, shared_image=0.6)
    train_images = set(splits.train["image_path"])
    assert splits.train["image_path"].duplicated().any()  # shared images exist
    assert not splits.val["image_path"].isin(train_images).any()
    assert len(splits.val) > 0
    # with one row per group the grouped split is the plain per-row stratified split
    labels = np.repeat(np.arange(4), 10)
    assert (stratified_split(labels, 0.3, 1) == stratified_split(labels, 0.3, 1, np.arange(40))).all()
    grouped = stratified_split(labels, 0.3, 1, labels * 100 + np.arange(40) // 2)  # pairs share a group
    pairs = grouped.reshape(-1, 2)
    assert (pairs[:, 0] == pairs[:, 1]).all() and grouped.any()
