"""FeatureSplit's shared storage (distinct images/texts + per-row indices), its readers, the RAM path of
FeatureData, and the pooled features of the probes: every path gives the per-row values exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fusionzoo.encoders.features import FeatureSplit, collate_features
from fusionzoo.encoders.probe import pooled
from fusionzoo.testing.token_features import synthetic_split
from fusionzoo.train import inputs as train_data
from fusionzoo.train.inputs import FeatureData, available_memory, default_memory_budget


def shared_split(tmp_path=None, n=12, images=4, texts=5, seed=0) -> FeatureSplit:
    """A split of ``n`` rows over ``images`` distinct images and ``texts`` ragged distinct texts;
    file-backed (raw fp16 files + ``sources``) when ``tmp_path`` is given."""
    rng = np.random.default_rng(seed)
    image_tokens = rng.normal(size=(images, 3, 4)).astype(np.float16)
    lengths = rng.integers(1, 6, texts)
    text_tokens = rng.normal(size=(int(lengths.sum()), 5)).astype(np.float16)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    image_index = np.concatenate([np.arange(images), rng.integers(0, images, n - images)])
    text_index = np.concatenate([np.arange(texts), rng.integers(0, texts, n - texts)])
    labels = rng.integers(0, 3, n)
    meta = pd.DataFrame({"item_id": [f"i{k}" for k in range(n)], "label": labels})
    sources = None
    if tmp_path is not None:
        image_tokens.tofile(tmp_path / "image.f16")
        text_tokens.tofile(tmp_path / "text.f16")
        sources = {"image_tokens": str(tmp_path / "image.f16"), "text_tokens": str(tmp_path / "text.f16")}
        image_tokens = np.memmap(tmp_path / "image.f16", np.float16, "r", shape=image_tokens.shape)
        text_tokens = np.memmap(tmp_path / "text.f16", np.float16, "r", shape=text_tokens.shape)
    return FeatureSplit(
        image_tokens, text_tokens, offsets, labels, meta, sources=sources, image_index=image_index,
        text_index=text_index,
    )  # fmt: skip


def per_row(split: FeatureSplit) -> tuple[np.ndarray, list[np.ndarray]]:
    """The rows written out one by one (the format-1 layout)."""
    images = np.stack([np.asarray(split.image_tokens[split.image_index[r]]) for r in range(len(split))])
    offsets = split.text_offsets
    texts = [np.asarray(split.text_tokens[offsets[u] : offsets[u + 1]]) for u in split.text_index]
    return images, texts


@pytest.mark.parametrize("backed", [False, True])
def test_row_accessors_equal_the_per_row_layout(tmp_path, backed):
    split = shared_split(tmp_path if backed else None)
    images, texts = per_row(split)
    rows = np.array([5, 0, 5, 11, 2])
    np.testing.assert_array_equal(split.image_rows(rows), images[rows])
    padded, lengths = split.text_rows(rows)
    assert padded.dtype == np.float16 and padded.shape[1] == max(len(texts[r]) for r in rows)
    for j, r in enumerate(rows):
        assert lengths[j] == len(texts[r])
        np.testing.assert_array_equal(padded[j, : lengths[j]], texts[r])
        assert not padded[j, lengths[j] :].any()
    assert split.text_lengths().tolist() == [len(t) for t in texts]
    assert split.num_images == 4 and split.num_texts == 5
    assert split.stored_bytes() == 4 * 3 * 4 * 2 + int(split.distinct_text_lengths().sum()) * 5 * 2


def test_collate_is_identical_from_files_memory_and_the_per_row_layout(tmp_path):
    backed = shared_split(tmp_path)
    memory = backed.in_memory()
    assert memory.sources is None and not isinstance(memory.image_tokens, np.memmap)
    images, texts = per_row(backed)
    lengths = np.array([len(t) for t in texts])
    flat = FeatureSplit(
        images, np.concatenate(texts), np.concatenate([[0], np.cumsum(lengths)]), backed.labels, backed.meta
    )  # one image and one text per row: what FeatureSplit held before sharing
    for rows in ([3, 1, 3, 0], list(range(12)), [7]):
        reference = collate_features(flat, rows)
        for other in (backed, memory):
            batch = collate_features(other, rows)
            for key in reference:
                assert torch.equal(batch[key], reference[key]), key
    assert reference["image"].dtype == torch.float32 and reference["text"].dtype == torch.float32


def test_subset_keeps_sharing_and_values():
    split = shared_split()
    rows = np.array([4, 8, 4, 9])
    sub = split.subset(rows)
    assert len(sub) == 4 and sub.num_images <= 3
    np.testing.assert_array_equal(sub.image_rows(np.arange(4)), split.image_rows(rows))
    a, _ = sub.text_rows(np.arange(4))
    b, _ = split.text_rows(rows)
    np.testing.assert_array_equal(a, b)
    assert sub.meta["item_id"].tolist() == [f"i{r}" for r in rows]


def test_inconsistent_indices_are_refused():
    split = shared_split()
    with pytest.raises(ValueError, match="image index points outside"):
        FeatureSplit(split.image_tokens, split.text_tokens, split.text_offsets, split.labels, split.meta,
                     image_index=split.image_index + 10, text_index=split.text_index)  # fmt: skip
    with pytest.raises(ValueError, match="inconsistent"):
        FeatureSplit(split.image_tokens, split.text_tokens, split.text_offsets, split.labels, split.meta,
                     image_index=split.image_index[:3], text_index=split.text_index)  # fmt: skip


def test_pooled_features_are_computed_once_per_distinct_input_and_equal_per_row_pooling():
    split = shared_split()
    images, texts = per_row(split)
    image, text = pooled(split, chunk=2)
    np.testing.assert_array_equal(image, images.astype(np.float32).mean(1))
    expected = np.stack([t.astype(np.float32).sum(0) / len(t) for t in texts])
    np.testing.assert_allclose(text, expected, rtol=1e-6, atol=1e-6)


def test_ram_and_pread_paths_give_identical_batches_and_the_budget_decides(tmp_path, monkeypatch):
    splits = []
    for name, size in (("train", {}), ("val", {"n": 6, "images": 2, "texts": 2}), ("test", {})):
        (tmp_path / name).mkdir()
        splits.append(shared_split(tmp_path / name, seed=len(splits), **size))
    assert splits[1].stored_bytes() < splits[0].stored_bytes()
    ram = FeatureData(*splits, num_classes=3)
    pread = FeatureData(*splits, num_classes=3, memory_budget=0)
    assert ram.materialised("train") is not None and pread.materialised("train") is None
    assert ram.materialised("train") is ram.materialised("train")  # read once, shared by every run
    assert ram.materialised("train").bytes == splits[0].stored_bytes() + 5 * 2  # + one zero padding row
    indices = torch.tensor([3, 1, 3, 0, 11])
    a, b = ram.batch("train", indices), pread.batch("train", indices)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    tight = FeatureData(*splits, num_classes=3, memory_budget=splits[0].stored_bytes() - 1)
    assert tight.materialised("train") is None and tight.materialised("val") is not None
    monkeypatch.setattr(train_data, "available_memory", lambda: 2 * splits[0].stored_bytes())
    assert default_memory_budget() == splits[0].stored_bytes()
    assert FeatureData(*splits, num_classes=3).materialised("train") is not None
    monkeypatch.setattr(train_data, "available_memory", lambda: None)
    assert default_memory_budget() == train_data.FALLBACK_MEMORY_BUDGET


def test_available_memory_is_read_from_the_system():
    available = available_memory()
    assert available is None or available > 0


def test_synthetic_features_without_sharing_still_work():
    split = synthetic_split(10, seed=1)
    assert split.num_images == split.num_texts == 10
    np.testing.assert_array_equal(split.image_index, np.arange(10))
    batch = collate_features(split, [0, 9])
    assert batch["image"].shape == (2, 4, 16)
