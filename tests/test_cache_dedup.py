"""Each distinct image and text is encoded and stored once; rows read exactly what per-row encoding gives."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fusionzoo.encoders.cache_plan import distinct_images, distinct_texts
from fusionzoo.encoders.features import collate_features
from fusionzoo.testing.tiny_encoders import encode_quietly
from fusionzoo.testing.tiny_splits import splits_from_csv, write_tiny_glami


def shared_csv(root: Path, n: int = 50, images: int = 11, texts: int = 13) -> Path:
    """A tiny dataset whose ``n`` rows use ``images`` image files and ``texts`` texts (in a shuffled order)."""
    csv = write_tiny_glami(root, n=n)
    frame = pd.read_csv(csv, dtype={"item_id": str}, keep_default_na=False)
    rng = np.random.default_rng(3)
    image_of = rng.integers(0, images, n)
    image_of[:images] = np.arange(images)  # every file used at least once
    text_of = rng.integers(0, texts, n)
    paths, words = frame["image_path"].tolist(), frame["text"].tolist()
    frame["image_path"] = [paths[i] for i in rng.permutation(image_of)]
    frame["text"] = [words[i] for i in text_of]
    frame.to_csv(csv, index=False)
    return csv


def run(splits, tiny_models, cache, **kwargs):
    return encode_quietly(splits, tiny_models, cache, **kwargs)


def per_row_encoding(
    frame: pd.DataFrame, tiny_models, batch_size: int = 4
) -> tuple[np.ndarray, list[np.ndarray]]:
    """What the format-1 cache stored: every row encoded, in row order, in batches of ``batch_size``."""
    from fusionzoo.data.images import ImageTextDataset

    image_encoder, text_encoder = tiny_models
    dataset = ImageTextDataset(frame.reset_index(drop=True), image_encoder.transform, "skip")
    images, texts = [], []
    for start in range(0, len(frame), batch_size):
        rows = range(start, min(len(frame), start + batch_size))
        pixels = torch.stack([dataset[i]["image"] for i in rows])
        tokens = text_encoder.tokenize([dataset[i]["text"] for i in rows])
        with torch.inference_mode():
            images.append(image_encoder(pixels).to(torch.float16).numpy())
            hidden, mask = text_encoder(tokens.input_ids, tokens.attention_mask)
        hidden = hidden.to(torch.float16).numpy()
        texts += [hidden[j, : int(mask[j].sum())] for j in range(len(rows))]
    return np.concatenate(images), texts


def test_distinct_inputs_are_stored_once_and_rows_equal_per_row_encoding(tmp_path, tiny_models):
    splits = splits_from_csv(shared_csv(tmp_path / "data"))
    train = splits.train.reset_index(drop=True)
    features, log = run(splits, tiny_models, tmp_path / "cache", split_names=["train"])
    split = features["train"]
    n_images, n_texts = train["image_path"].nunique(), train["text"].nunique()
    assert len(split) == len(train) > n_images and len(split) > n_texts
    assert split.num_images == n_images and split.num_texts == n_texts
    assert f"({n_images:,} distinct images, {n_texts:,} distinct texts)" in log
    entry = Path(split.info["cache_path"])
    image_encoder, text_encoder = tiny_models
    row_bytes = image_encoder.num_tokens * image_encoder.out_dim * 2
    assert (entry / "image_tokens.f16").stat().st_size == n_images * row_bytes  # scales with distinct images
    assert (entry / "text_lengths.i64").stat().st_size == n_texts * 8
    # rows sharing a file share its tokens; identical texts share theirs
    for column, index in (("image_path", split.image_index), ("text", split.text_index)):
        for _, group in train.groupby(column):
            assert len(set(index[group.index].tolist())) == 1
        assert len(set(index.tolist())) == train[column].nunique()

    # exactly what encoding every row (the format-1 cache) gives, on CPU: no tolerance
    images, texts = per_row_encoding(train, tiny_models)
    np.testing.assert_array_equal(split.image_rows(np.arange(len(split))), images)
    padded, lengths = split.text_rows(np.arange(len(split)))
    assert lengths.tolist() == [len(t) for t in texts]
    for row, tokens in enumerate(texts):
        np.testing.assert_array_equal(padded[row, : len(tokens)], tokens)
        assert not padded[row, len(tokens) :].any()
    batch = collate_features(split, [7, 3, 7, 0])
    np.testing.assert_array_equal(batch["image"].numpy(), images[[7, 3, 7, 0]].astype(np.float32))
    assert batch["text_mask"].sum(1).tolist() == [len(texts[i]) for i in (7, 3, 7, 0)]


def test_a_shared_unreadable_image_drops_every_row_that_uses_it(tmp_path, tiny_models):
    splits = splits_from_csv(shared_csv(tmp_path / "data"))
    train = splits.train.reset_index(drop=True)
    bad_path = train["image_path"].value_counts().index[0]  # the most shared image becomes unreadable
    Path(bad_path).write_bytes(b"this is not a jpeg")
    users = train.loc[train["image_path"] == bad_path, "item_id"].tolist()
    assert len(users) >= 2
    features, log = run(splits, tiny_models, tmp_path / "cache", split_names=["train"])
    split = features["train"]
    assert len(split) == len(train) - len(users)
    assert sorted(split.info["bad_items"]) == sorted(users)
    assert f"dropped {len(users)} row(s) with unreadable images" in log and "(1 image file(s))" in log
    assert not set(users) & set(split.meta["item_id"])
    assert split.num_images == train["image_path"].nunique() - 1
    with pytest.raises(Exception, match=rf"1 unreadable image\(s\) used by {len(users)} row\(s\)"):
        run(splits, tiny_models, tmp_path / "cache2", split_names=["train"], on_bad_image="fail")


def test_an_interrupted_text_phase_resumes_and_equals_an_uninterrupted_encode(tmp_path, tiny_models):
    splits = splits_from_csv(shared_csv(tmp_path / "data", n=60, images=20, texts=30))
    fresh, _ = run(splits, tiny_models, tmp_path / "fresh", split_names=["train"])

    class Stop(Exception):
        pass

    def stop_in_texts(split, chunk):
        journal = json.loads(next((tmp_path / "cache").glob("*.partial/journal.json")).read_text())
        if journal["chunks"][-1]["phase"] == "text":
            raise Stop

    with pytest.raises(Stop):
        run(splits, tiny_models, tmp_path / "cache", split_names=["train"], on_chunk=stop_in_texts)
    resumed, log = run(splits, tiny_models, tmp_path / "cache", split_names=["train"])
    assert "resuming an interrupted encode at row 8 of" in log and "distinct texts" in log
    assert resumed["train"].info["resumed"] is True
    a, b = resumed["train"], fresh["train"]
    for name in ("image_tokens", "text_tokens", "text_offsets", "image_index", "text_index", "labels"):
        np.testing.assert_array_equal(
            np.asarray(getattr(a, name)), np.asarray(getattr(b, name)), err_msg=name
        )


@pytest.mark.parametrize("verify", ["auto", "size"])
def test_a_damaged_index_file_is_a_corrupt_entry(tmp_path, tiny_models, verify):
    splits = splits_from_csv(shared_csv(tmp_path / "data"))
    first, _ = run(splits, tiny_models, tmp_path / "cache", split_names=["train"])
    entry = Path(first["train"].info["cache_path"])
    index = np.fromfile(entry / "image_index.i64", dtype=np.int64)
    expected = index.copy()
    index[0] = 10_000  # same size, points outside the stored images
    index.tofile(entry / "image_index.i64")
    del first
    again, log = run(splits, tiny_models, tmp_path / "cache", split_names=["train"], verify=verify)
    assert "corrupt cache entry for train" in log and "image_index.i64" in log and "rebuilding" in log
    np.testing.assert_array_equal(again["train"].image_index, expected)


def test_distinct_images_use_path_size_and_mtime(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"1")
    (tmp_path / "b.jpg").write_bytes(b"1")
    frame = pd.DataFrame({"image_path": [str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg"),
                                         str(tmp_path / "sub" / ".." / "a.jpg"), str(tmp_path / "gone.jpg")]})  # fmt: skip
    first, of_row = distinct_images(frame)
    assert first.tolist() == [0, 1, 3] and of_row.tolist() == [
        0,
        1,
        0,
        2,
    ]  # same bytes, other file: not shared
    first, of_row = distinct_texts(pd.Series(["x", "y", "x", "x "]))
    assert first.tolist() == [0, 1, 3] and of_row.tolist() == [0, 1, 0, 2]


def test_the_cache_format_and_feature_modules_import_without_torch():
    code = (
        "import sys; import fusionzoo.encoders.cache_format, fusionzoo.encoders.cache_plan, "
        "fusionzoo.encoders.features; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"
