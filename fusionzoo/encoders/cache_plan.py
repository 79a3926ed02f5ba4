"""What an encode of one split will do, before any model runs: its distinct inputs, its chunks and
batches, its size (with the ways to shrink it) and whether the disk has room. No torch.

- :func:`distinct_images`: the split's image files, each once, in order of first appearance. Two rows
  share an image when the normalised absolute path, the size and the mtime of their files are equal
  (the split fingerprint in the cache key already pins every image's size and mtime); a missing file
  is identified by its path, so every row of an unreadable image is dropped together.
- :func:`distinct_texts`: exact string matches (``astype(str)``: what the tokenizer is given), in order
  of first appearance, among the rows that are kept.
- :func:`chunk_batches`: chunks of ``chunk_rows`` distinct items, split into batches that never straddle
  a chunk, so a resumed encode reproduces the batches of the interrupted one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.encoders.errors import EncoderError
from fusionzoo.io import human_bytes

__all__ = [
    "LARGE_CACHE_WARNING",
    "check_space",
    "chunk_batches",
    "distinct_images",
    "distinct_texts",
    "estimate_bytes",
    "kept_after_images",
    "size_advice",
]

LARGE_CACHE_WARNING = 20 << 30


def distinct_images(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(first_rows (Ui,), image_of_row (N,))``: each distinct image file's first row, in order of
    appearance, and each row's distinct image."""
    from fusionzoo.data.checks import stat_images

    paths = frame["image_path"].astype(str).map(lambda p: os.path.normpath(os.path.abspath(p)))
    stats = stat_images(pd.unique(paths))
    codes, _ = pd.factorize(paths.map(lambda p: f"{p}\0{stats[p]}"), sort=False)
    return _first_rows(codes), codes.astype(np.int64)


def distinct_texts(texts: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(first_rows (Ut,), text_of_row (N,))`` for exact string matches (``astype(str)``, as encoded)."""
    codes, _ = pd.factorize(texts.astype(str).reset_index(drop=True), sort=False)
    return _first_rows(codes), codes.astype(np.int64)


def _first_rows(codes: np.ndarray) -> np.ndarray:
    if len(codes) == 0:
        return np.zeros(0, np.int64)
    _, first = np.unique(codes, return_index=True)  # codes are 0..U-1 in order of first appearance
    return first.astype(np.int64)


def kept_after_images(image_of_row: np.ndarray, bad_images: set[int]) -> np.ndarray:
    """Ascending rows whose distinct image was readable."""
    if not bad_images:
        return np.arange(len(image_of_row), dtype=np.int64)
    return np.flatnonzero(~np.isin(image_of_row, np.fromiter(bad_images, np.int64))).astype(np.int64)


def chunk_batches(start: int, stop: int, chunk_rows: int, batch_size: int) -> list[list[list[int]]]:
    """Batches of item indices ``start..stop-1``, grouped by chunk of ``chunk_rows``."""
    chunks = []
    for chunk_start in range(start, stop, chunk_rows):
        chunk_stop = min(stop, chunk_start + chunk_rows)
        batches = range(chunk_start, chunk_stop, batch_size)
        chunks.append([list(range(b, min(chunk_stop, b + batch_size))) for b in batches])
    return chunks


def estimate_bytes(
    frame: pd.DataFrame, image_encoder: Any, text_encoder: Any, sample: int = 256
) -> dict[str, Any]:
    """Expected cache size of a split: its distinct images' and distinct texts' tokens (text length
    from a sample of the distinct texts; unreadable images are not known yet and counted)."""
    first_images, _ = distinct_images(frame)
    first_texts, _ = distinct_texts(frame["text"])
    texts = frame["text"].astype(str).iloc[first_texts]
    image = len(first_images) * image_encoder.num_tokens * image_encoder.out_dim * 2
    lengths: list[int] = []
    if len(texts):
        picked = texts.sample(min(sample, len(texts)), random_state=0).tolist()
        lengths = list(text_encoder.tokenize(picked).lengths)
        mean_length = 1.0 if text_encoder.token_selection != "all" else float(np.mean(lengths))
    else:
        mean_length = 0.0
    text = len(texts) * mean_length * text_encoder.out_dim * 2
    return {
        "image": float(image),
        "text": float(text),
        "mean_text_tokens": mean_length,
        "rows": len(frame),
        "images": len(first_images),
        "texts": len(texts),
        "sample_lengths": lengths,  # token lengths of the sampled texts (the size advice's reductions)
    }


def size_advice(
    total: float, image_encoder: Any, text_encoder: Any, estimates: dict[str, dict[str, Any]] | None = None
) -> str:
    """What the cache will take and the flags that make it smaller; with ``estimates``, the size each
    token-level reduction gives (:mod:`fusionzoo.encoders.reductions`)."""
    from fusionzoo.encoders.reductions import reductions_text

    token_level = ""
    if estimates:
        lengths = np.asarray(
            [n for e in estimates.values() for n in e.get("sample_lengths", [])] or [0], float
        )
        image = sum(e["image"] for e in estimates.values())
        text = sum(e["text"] for e in estimates.values())
        token_level = reductions_text(image, text, lengths, image_encoder, text_encoder)
    return (
        f"the feature cache will take about {human_bytes(total)}. To make it smaller: "
        f"--text-max-length N (now {text_encoder.max_length}), --image-tokens cls|mean|N "
        f"(now {image_encoder.token_selection}, {image_encoder.num_tokens} tokens per image), "
        f"or a pooled-only cache with --image-tokens mean --text-tokens mean (vector fusions only)."
        + (f" {token_level}" if token_level else "")
    )


def check_space(
    root: Path, estimates: dict[str, dict[str, float]], image_encoder: Any, text_encoder: Any, console: Any
) -> None:
    """Print each split's size estimate; refuse when the disk lacks the space, warn when it is large."""
    total = sum(e["image"] + e["text"] for e in estimates.values())
    for split, e in estimates.items():
        console.print(
            f"\\[cache] {split}: encoding {e['rows']:,} rows ({e['images']:,} distinct images, "
            f"{e['texts']:,} distinct texts) → about {human_bytes(e['image'] + e['text'])} "
            f"(image {human_bytes(e['image'])}, text {human_bytes(e['text'])}, "
            f"~{e['mean_text_tokens']:.0f} tokens/text)"
        )
    free = shutil.disk_usage(root).free
    if total > free:
        raise EncoderError(
            f"not enough disk space in {root}: {human_bytes(free)} free; "
            + size_advice(total, image_encoder, text_encoder, estimates)
        )
    if total > LARGE_CACHE_WARNING:
        console.print(
            "\\[cache] [bold yellow]warning[/]: " + size_advice(total, image_encoder, text_encoder, estimates)
        )
