"""Sharded encoding (the engine of ``fusionzoo encode --launcher ray``): shards at chunk boundaries, the
same features as one encode, a committed entry that the cache opens and verifies, interrupted shards resumed."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from launch_helpers import tiny_encoders
from rich.console import Console

from fusionzoo.encoders.cache import encode_splits, open_entry
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
    for name in ("image_tokens", "text_tokens", "text_offsets", "labels"):
        np.testing.assert_array_equal(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)), name)
    assert a.meta.equals(b.meta)


def test_sharded_encode_equals_one_encode_and_resumes_interrupted_shards(tmp_path):
    splits, image, text = tiny_encoders(tmp_path)
    whole, _ = _encode(splits, image, text, tmp_path / "whole")
    sharded = ShardedEncoder(run_here(image, text), shards=3)
    parts, log = _encode(splits, image, text, tmp_path / "sharded", encode_entry=sharded)
    assert "in 3 shard(s)" in log
    for split in whole:
        _same(whole[split], parts[split])
        reopened = open_entry(Path(parts[split].info["cache_path"]), "full")  # every chunk's sha256 verified
        _same(whole[split], reopened)
        assert not (Path(parts[split].info["cache_path"]) / "shards").exists()

    # interrupted after the first shard of the train split: the rerun keeps it and encodes the rest
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
    assert [s for _, s, _ in again.ran] == [r[0] for r in shard_ranges(len(splits.train), 3, 8)[1:]]
    _same(whole["train"], parts["train"])
