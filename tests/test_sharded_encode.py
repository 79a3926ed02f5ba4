"""Sharded encoding (the engine of ``fusionzoo encode --launcher ray``): shards at chunk boundaries, the
same features as one encode, a committed entry that the cache opens and verifies, interrupted shards resumed."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from launch_helpers import tiny_encoders
from rich.console import Console

from fusionzoo.encoders.cache import encode_splits
from fusionzoo.encoders.cache_format import open_entry
from fusionzoo.encoders.sharded import ShardedEncoder, run_here, shard_ranges


def test_shard_ranges_cover_the_rows_at_chunk_boundaries():
    assert shard_ranges(100, 3, 16) == [(0, 48), (48, 80), (80, 100)]
    assert shard_ranges(10, 4, 16) == [(0, 10)]  # never more shards than chunks
    ranges = shard_ranges(1000, 7, 32)
    assert ranges[0][0] == 0 and ranges[-1][1] == 1000
    assert all(a % 32 == 0 for a, _ in ranges) and all(
        b == c for (_, b), (c, _) in zip(ranges, ranges[1:], strict=False)
    )


def _encode(splits, image, text, cache, **kwargs):
    out = io.StringIO()
    features = encode_splits(
        splits, image, text, cache, batch_size=4, chunk_rows=8, num_workers=0, progress=False,
        console=Console(file=out, width=300), **kwargs,
    )  # fmt: skip
    return features, out.getvalue()


def _same(a, b):
    for name in ("image_tokens", "text_tokens", "text_offsets", "labels", "image_index", "text_index"):
        np.testing.assert_array_equal(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)), name)
    assert a.meta.equals(b.meta)
    assert a.info.get("bad_items") == b.info.get("bad_items")


def _shared_inputs(tmp_path):
    """Tiny splits whose rows share images (GLAMI-like) and texts, with one unreadable image."""
    import pandas as pd

    from fusionzoo.testing.tiny_splits import splits_from_csv, write_tiny_glami

    csv = write_tiny_glami(tmp_path / "shared", n=96, bad=(40,))  # rows 40, 41 share it (2nd shard)
    frame = pd.read_csv(csv)
    frame["image_path"] = frame["image_path"].iloc[(np.arange(len(frame)) // 2) * 2].to_numpy()  # pairs
    frame.loc[frame.index % 5 == 0, "text"] = "cotton shirt"  # a repeated text
    frame.to_csv(csv, index=False)
    return splits_from_csv(csv)


def test_sharded_encode_equals_one_encode_and_resumes_interrupted_shards(tmp_path):
    _, image, text = tiny_encoders(tmp_path)
    splits = _shared_inputs(tmp_path)
    whole, _ = _encode(splits, image, text, tmp_path / "whole")
    assert whole["train"].num_images < len(whole["train"]) and whole["train"].info["bad_items"]
    sharded = ShardedEncoder(run_here(image, text), shards=3)
    parts, log = _encode(splits, image, text, tmp_path / "sharded", encode_entry=sharded)
    assert "distinct images in 3 shard(s)" in log and "distinct texts in 3 shard(s)" in log
    for split in whole:
        _same(whole[split], parts[split])
        reopened = open_entry(Path(parts[split].info["cache_path"]), "full")  # every chunk's sha256 verified
        _same(whole[split], reopened)
        assert not (Path(parts[split].info["cache_path"]) / "shards").exists()

    # interrupted after the first image shard of the train split: the rerun keeps it, encodes the rest
    class Interrupt(Exception):
        pass

    def first_only(jobs):
        for i, result in enumerate(run_here(image, text)(jobs)):
            yield result
            if i == 0:
                raise Interrupt

    with pytest.raises(Interrupt):
        _encode(splits, image, text, tmp_path / "resumed", encode_entry=ShardedEncoder(first_only, shards=3),
                split_names=["train"])  # fmt: skip
    again = ShardedEncoder(run_here(image, text), shards=3)
    parts, log = _encode(splits, image, text, tmp_path / "resumed", encode_entry=again, split_names=["train"])
    assert "1 finished shard(s) kept" in log
    images = whole["train"].num_images + len(whole["train"].info["bad_items"]) // 2  # bad: one image, 2 rows
    ran_images = [start for _, phase, start, _ in again.ran if phase == "image"]
    assert ran_images == [r[0] for r in shard_ranges(images, 3, 8)[1:]]
    assert len([r for r in again.ran if r[1] == "text"]) == 3
    _same(whole["train"], parts["train"])


def test_shards_as_tasks_of_the_warm_pool_equal_one_encode(tmp_path):
    """``fusionzoo encode --jobs 2``: each shard a task of the process pool; the same features."""
    from fusionzoo.encoders.sharded import LauncherShards
    from fusionzoo.launch.pool import PoolLauncher

    _, image, text = tiny_encoders(tmp_path)
    splits = _shared_inputs(tmp_path)
    whole, _ = _encode(splits, image, text, tmp_path / "whole", split_names=["train"])
    notes: list[str] = []
    runner = LauncherShards(PoolLauncher(jobs=2, device="cpu"), image, text, say=notes.append)
    parts, log = _encode(
        splits, image, text, tmp_path / "pool", encode_entry=ShardedEncoder(runner, 2), split_names=["train"]
    )
    assert "distinct images in 2 shard(s)" in log and any("2 run(s) at once" in n for n in notes)
    _same(whole["train"], parts["train"])
