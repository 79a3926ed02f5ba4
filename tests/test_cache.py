"""The token-feature cache: reuse, invalidation, resume after SIGKILL, corruption, ragged text."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fusionzoo.encoders.cache_format import FILES, WHOLE_FILES
from fusionzoo.encoders.errors import EncoderError
from fusionzoo.testing.tiny_encoders import encode_quietly, load_tiny_encoders
from fusionzoo.testing.tiny_splits import splits_from_csv, write_tiny_glami


def encoders(tiny_model_dirs, image_key="image", max_length=32):
    return load_tiny_encoders(tiny_model_dirs, image_key, max_length)


def run(splits, image, text, cache, **kwargs):
    return encode_quietly(splits, (image, text), cache, **kwargs)


def same(a, b):
    for name in ("image_tokens", "text_tokens", "text_offsets", "labels", "image_index", "text_index"):
        np.testing.assert_array_equal(
            np.asarray(getattr(a, name)), np.asarray(getattr(b, name)), err_msg=name
        )
    assert a.meta.equals(b.meta)


def test_encode_then_reuse_and_report(tmp_path, tiny_model_dirs):
    splits = splits_from_csv(write_tiny_glami(tmp_path / "data", n=30))
    image, text = encoders(tiny_model_dirs)
    first, log1 = run(splits, image, text, tmp_path / "cache")
    assert set(first) == {"train", "val", "test"}
    train = first["train"]
    assert len(train) == len(splits.train) == 18
    assert train.image_tokens.dtype == np.float16 and isinstance(train.image_tokens, np.memmap)
    assert train.image_tokens.shape == (18, image.num_tokens, image.out_dim)
    assert train.info["reused"] is False
    assert "encoding 18 rows" in log1 and "about" in log1  # size estimate before encoding
    assert list(train.labels) == splits.train["label"].tolist()
    assert train.meta["item_id"].tolist() == splits.train["item_id"].tolist()
    second, log2 = run(splits, image, text, tmp_path / "cache")
    assert all(f.info["reused"] for f in second.values())
    assert "reusing cached features" in log2 and "encoding" not in log2
    same(first["train"], second["train"])


def test_invalidated_by_csv_option_and_encoder_change(tmp_path, tiny_model_dirs):
    csv = write_tiny_glami(tmp_path / "data", n=20)
    splits = splits_from_csv(csv)
    image, text = encoders(tiny_model_dirs)
    base, _ = run(splits, image, text, tmp_path / "cache")
    key = base["train"].info["key"]

    # a CSV edit (one text changed) -> new dataset fingerprint -> new entry
    content = csv.read_text().replace("item3,", "item3,", 1)
    lines = content.splitlines()
    lines[1] = lines[1].replace("nice", "brandnew", 1) if "nice" in lines[1] else lines[1] + " "
    csv.write_text("\n".join(lines) + "\n")
    edited, log = run(splits_from_csv(csv), image, text, tmp_path / "cache")
    assert edited["train"].info["reused"] is False and edited["train"].info["key"] != key

    # an option (max_length) -> new entry
    image2, text_short = encoders(tiny_model_dirs, max_length=4)
    short, _ = run(splits, image2, text_short, tmp_path / "cache")
    assert short["train"].info["reused"] is False and short["train"].info["key"] != key
    assert short["train"].text_lengths().max() <= 4
    assert short["train"].info["truncated_texts"] > 0

    # another encoder (different weights, same architecture) -> new entry
    other_image, other_text = encoders(tiny_model_dirs, image_key="image_other")
    other, _ = run(splits, other_image, other_text, tmp_path / "cache")
    assert other["train"].info["reused"] is False and other["train"].info["key"] != key

    # and the original is still reused
    again, _ = run(splits, image, text, tmp_path / "cache")
    assert again["train"].info["reused"] and again["train"].info["key"] == key


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from fusionzoo.encoders.cache import encode_splits
    from fusionzoo.encoders.image import create_image_encoder
    from fusionzoo.testing.tiny_splits import splits_from_csv
    from fusionzoo.encoders.text import create_text_encoder

    csv, image_dir, text_dir, cache = sys.argv[1:5]
    splits = splits_from_csv(csv)
    image = create_image_encoder("timm:" + image_dir)
    text = create_text_encoder("hf:" + text_dir, max_length=32)

    def slow(split, chunk):
        print("chunk", split, chunk, flush=True)
        time.sleep(30)  # the test kills us here, after at least one committed chunk

    encode_splits(splits, image, text, cache, split_names=["train"], batch_size=4, chunk_rows=8,
                  num_workers=0, progress=False, on_chunk=slow)
    """
)


def test_resumes_after_sigkill_and_equals_uninterrupted(tmp_path, tiny_model_dirs):
    csv = write_tiny_glami(tmp_path / "data", n=40)
    splits = splits_from_csv(csv)
    script = tmp_path / "kill_me.py"
    script.write_text(KILL_SCRIPT)
    cache = tmp_path / "cache"
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(csv),
            str(tiny_model_dirs["image"]),
            str(tiny_model_dirs["text"]),
            str(cache),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    try:
        line = ""
        deadline = time.time() + 120
        while "chunk" not in line and time.time() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert "chunk train 0" in line, f"encoder subprocess did not commit a chunk: {line!r}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = [p for p in cache.iterdir() if p.name.endswith(".partial")]
    assert len(partial) == 1
    journal = json.loads((partial[0] / "journal.json").read_text())
    assert len(journal["chunks"]) >= 1
    assert not any(
        p.name.startswith("tiny-train-") and not p.name.endswith((".partial", ".lock"))
        for p in cache.iterdir()
    )

    # a kill in the middle of a chunk's write leaves bytes past the journal: they must be discarded
    with open(partial[0] / "image_tokens.f16", "ab") as handle:
        handle.write(b"\x01" * 1000)
    image, text = encoders(tiny_model_dirs)
    resumed, log = run(splits, image, text, cache, split_names=["train"])
    assert "resuming an interrupted encode at row 8" in log
    assert resumed["train"].info["resumed"] is True
    fresh, _ = run(splits, image, text, tmp_path / "fresh", split_names=["train"])
    same(resumed["train"], fresh["train"])
    assert not any(p.name.endswith(".partial") for p in cache.iterdir())


def test_partial_entry_with_damaged_chunk_resumes_before_it(tmp_path, tiny_model_dirs):
    splits = splits_from_csv(write_tiny_glami(tmp_path / "data", n=40))
    image, text = encoders(tiny_model_dirs)
    fresh, _ = run(splits, image, text, tmp_path / "fresh", split_names=["train"])

    class Stop(Exception):
        pass

    def stop_after_two(split, chunk):
        if chunk == 1:
            raise Stop

    with pytest.raises(Stop):
        run(splits, image, text, tmp_path / "cache", split_names=["train"], on_chunk=stop_after_two)
    partial = next(p for p in (tmp_path / "cache").iterdir() if p.name.endswith(".partial"))
    journal = json.loads((partial / "journal.json").read_text())
    assert [c["phase"] for c in journal["chunks"]] == ["image", "image"]
    start, length, _ = journal["chunks"][1]["files"]["image_tokens.f16"]
    with open(partial / "image_tokens.f16", "r+b") as handle:
        handle.seek(start + length // 2)
        handle.write(b"\x7f\x7f\x7f\x7f")
    resumed, log = run(splits, image, text, tmp_path / "cache", split_names=["train"])
    assert "chunk 1 is damaged" in log and "resuming an interrupted encode at row 8" in log
    same(resumed["train"], fresh["train"])


def test_corrupt_entry_is_detected_and_rebuilt(tmp_path, tiny_model_dirs):
    splits = splits_from_csv(write_tiny_glami(tmp_path / "data", n=30))
    image, text = encoders(tiny_model_dirs)
    first, _ = run(splits, image, text, tmp_path / "cache")
    entry = Path(first["train"].info["cache_path"])
    reference = {name: np.array(getattr(first["train"], name)) for name in ("image_tokens", "text_tokens")}
    del first
    manifest = json.loads((entry / "manifest.json").read_text())
    start, length, _ = manifest["chunks"][1]["files"]["image_tokens.f16"]
    with open(entry / "image_tokens.f16", "r+b") as handle:
        handle.seek(start + 10)
        original = handle.read(4)
        handle.seek(start + 10)
        handle.write(bytes(b ^ 0xFF for b in original))
    second, log = run(splits, image, text, tmp_path / "cache")
    assert "corrupt cache entry for train" in log and "chunk 1" in log
    assert second["train"].info["reused"] is False
    np.testing.assert_array_equal(np.asarray(second["train"].image_tokens), reference["image_tokens"])
    assert second["val"].info["reused"] and second["test"].info["reused"]

    # a truncated file is caught by the size check, too
    os.truncate(entry / "text_tokens.f16", 10)
    third, log = run(splits, image, text, tmp_path / "cache")
    assert "corrupt cache entry for train" in log and third["train"].info["reused"] is False
    np.testing.assert_array_equal(np.asarray(third["train"].text_tokens), reference["text_tokens"])


def test_ragged_text_round_trip(tmp_path, tiny_model_dirs):
    splits = splits_from_csv(write_tiny_glami(tmp_path / "data", n=20))
    image, text = encoders(tiny_model_dirs)
    features, _ = run(splits, image, text, tmp_path / "cache", split_names=["train"])
    train = features["train"]
    texts = splits.train["text"].tolist()
    assert (tmp_path / "cache").exists()
    entry = Path(train.info["cache_path"])
    lengths = train.text_lengths()
    assert len(set(lengths.tolist())) > 1  # really ragged
    stored_tokens = int(train.distinct_text_lengths().sum())
    assert (entry / "text_tokens.f16").stat().st_size == stored_tokens * text.out_dim * 2  # no padding
    for i in (0, 3, len(texts) - 1):
        batch = text.tokenize([texts[i]])
        with torch.no_grad():
            expected, mask = text(batch.input_ids, batch.attention_mask)
        u = train.text_index[i]
        stored = np.asarray(train.text_tokens[train.text_offsets[u] : train.text_offsets[u + 1]], np.float32)
        assert stored.shape == (int(mask.sum()), text.out_dim)
        np.testing.assert_allclose(stored, expected[0].numpy(), atol=2e-2, rtol=2e-2)
    from fusionzoo.encoders.features import collate_features

    batch = collate_features(train, [2, 0, 5])
    assert batch["text"].shape[1] == lengths[[2, 0, 5]].max()
    assert batch["text_mask"].sum(1).tolist() == lengths[[2, 0, 5]].tolist()
    # batches are read with pread from the cache files; the same as indexing the memory maps
    assert train.sources is not None
    through_memmap = dataclasses.replace(train, sources=None)
    for rows in ([5, 1, 2, 3, 9], list(range(len(train))), [7]):
        a, b = collate_features(train, rows), collate_features(through_memmap, rows)
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_bad_images_skip_and_fail(tmp_path, tiny_model_dirs):
    splits = splits_from_csv(write_tiny_glami(tmp_path / "data", n=20, bad=(2, 5)))
    image, text = encoders(tiny_model_dirs)
    features, log = run(splits, image, text, tmp_path / "cache", split_names=["train"])
    train = features["train"]
    assert len(train) == len(splits.train) - 2
    assert "item2" not in train.meta["item_id"].tolist()
    assert "dropped 2 row(s) with unreadable images, first item_ids: item2, item5" in log
    assert train.info["bad_items"] == ["item2", "item5"]
    with pytest.raises(EncoderError, match="unreadable image.*item2"):
        run(splits, image, text, tmp_path / "cache2", split_names=["train"], on_bad_image="fail")


def test_files_are_the_documented_layout(tmp_path, tiny_model_dirs):
    splits = splits_from_csv(write_tiny_glami(tmp_path / "data", n=10))
    image, text = encoders(tiny_model_dirs)
    features, _ = run(splits, image, text, tmp_path / "cache", split_names=["test"])
    entry = Path(features["test"].info["cache_path"])
    assert {p.name for p in entry.iterdir()} == set(FILES) | set(WHOLE_FILES) | {"manifest.json"}


def test_size_estimate_warns_and_refuses_when_the_disk_is_too_small(tmp_path, tiny_model_dirs, monkeypatch):
    import shutil as shutil_module
    from collections import namedtuple

    from fusionzoo.encoders import cache_plan

    splits = splits_from_csv(write_tiny_glami(tmp_path / "data", n=10))
    image, text = encoders(tiny_model_dirs)
    monkeypatch.setattr(cache_plan, "LARGE_CACHE_WARNING", 1)
    _, log = run(splits, image, text, tmp_path / "cache", split_names=["test"])
    assert (
        "warning" in log and "--text-max-length" in log and "--image-tokens" in log and "pooled-only" in log
    )
    assert "Token-level reductions" in log and f"--image-tokens {(image.num_tokens - 1) // 4}" in log
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: usage(10, 10, 0))
    with pytest.raises(EncoderError, match="not enough disk space"):
        run(splits, image, text, tmp_path / "cache", split_names=["val"])


def test_limit_gives_a_new_entry_and_empty_splits_work(tmp_path, tiny_model_dirs):
    splits = splits_from_csv(write_tiny_glami(tmp_path / "data", n=20))
    image, text = encoders(tiny_model_dirs)
    full, _ = run(splits, image, text, tmp_path / "cache", split_names=["train"])
    smaller = dataclasses.replace(splits, train=splits.train.iloc[:5].reset_index(drop=True))
    limited, _ = run(smaller, image, text, tmp_path / "cache", split_names=["train"])
    assert limited["train"].info["key"] != full["train"].info["key"] and len(limited["train"]) == 5
    np.testing.assert_allclose(  # same rows, other batch composition: equal up to fp16 rounding
        np.asarray(limited["train"].image_tokens, np.float32),
        np.asarray(full["train"].image_tokens[:5], np.float32),
        atol=1e-2,
    )
    empty = dataclasses.replace(splits, val=splits.val.iloc[:0])
    features, _ = run(empty, image, text, tmp_path / "cache", split_names=["val"])
    assert len(features["val"]) == 0 and features["val"].image_tokens.shape == (
        0,
        image.num_tokens,
        image.out_dim,
    )
    again, log = run(empty, image, text, tmp_path / "cache", split_names=["val"])
    assert again["val"].info["reused"] and "reusing" in log


CONCURRENT_SCRIPT = textwrap.dedent(
    """
    import sys
    from fusionzoo.encoders.cache import encode_splits
    from fusionzoo.encoders.image import create_image_encoder
    from fusionzoo.testing.tiny_splits import splits_from_csv
    from fusionzoo.encoders.text import create_text_encoder

    csv, image_dir, text_dir, cache = sys.argv[1:5]
    splits = splits_from_csv(csv)
    image = create_image_encoder("timm:" + image_dir)
    text = create_text_encoder("hf:" + text_dir, max_length=32)
    out = encode_splits(splits, image, text, cache, split_names=["train"], batch_size=4, chunk_rows=8,
                        num_workers=0, progress=False)
    print("RESULT", out["train"].info["reused"], out["train"].info["key"], float(out["train"].image_tokens.sum()))
    """
)


def test_two_processes_encoding_the_same_entry_serialise(tmp_path, tiny_model_dirs):
    """Parallel bench/tune workers may ask for the same features at once: one encodes, one reuses."""
    csv = write_tiny_glami(tmp_path / "data", n=40)
    script = tmp_path / "encode.py"
    script.write_text(CONCURRENT_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    args = [
        sys.executable,
        str(script),
        str(csv),
        str(tiny_model_dirs["image"]),
        str(tiny_model_dirs["text"]),
        str(tmp_path / "c"),
    ]
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    results = [
        next(line for line in out.splitlines() if line.startswith("RESULT")).split() for out, _ in outputs
    ]
    assert sorted(r[1] for r in results) == ["False", "True"]  # exactly one encoded
    assert results[0][2:] == results[1][2:]
    entries = [p for p in (tmp_path / "c").iterdir() if p.is_dir()]
    assert len(entries) == 1 and not entries[0].name.endswith(".partial")


def test_on_bad_image_fail_names_the_files_before_anything_is_encoded(tmp_path, tiny_model_dirs):
    splits = splits_from_csv(write_tiny_glami(tmp_path / "data", n=20, bad=(2, 5)))
    image, text = encoders(tiny_model_dirs)
    calls = []
    image.register_forward_pre_hook(lambda module, args: calls.append(1))
    cache = tmp_path / "cache"
    with pytest.raises(EncoderError) as caught:
        run(splits, image, text, cache, split_names=["train", "test"], on_bad_image="fail")
    message = str(caught.value)
    frames = [splits.split(split) for split in ("train", "test")]
    path_of = {i: p for f in frames for i, p in zip(f["item_id"], f["image_path"], strict=True)}
    bad = [path_of[i] for i in ("item2", "item5") if i in path_of]
    assert f"{len(bad)} unreadable image(s) used by {len(bad)} row(s) (" in message, message
    assert "nothing encoded" in message and "--on-bad-image skip" in message
    assert all(f"{path} (not an image file PIL can read)" in message for path in bad), message
    assert calls == [] and not any(cache.glob("*train*"))  # no image was encoded (was: all of them first)


def test_a_jpeg_truncated_after_its_header_is_named_when_it_is_decoded(tmp_path, tiny_model_dirs):
    csv = write_tiny_glami(tmp_path / "data", n=20)
    splits = splits_from_csv(csv)
    path = Path(splits.train["image_path"].iloc[3])
    path.write_bytes(path.read_bytes()[:-120])  # the header opens, the end of the scan data is cut
    image, text = encoders(tiny_model_dirs)
    with pytest.raises(EncoderError, match=rf"1 unreadable image\(s\) used by 1 row\(s\): {path} \(item_ids"):
        run(splits, image, text, tmp_path / "cache", split_names=["train"], on_bad_image="fail")
