"""Smaller feature caches that keep a token-level fusion's input: what the size warning offers.

FLUID (and every token fusion) reads *sequences* of image and text tokens, so a pooled-only cache
(``--image-tokens mean --text-tokens mean``) would silently turn it into a vector fusion. Two
reductions keep sequences:

- ``--image-tokens N``: the patch grid average-pooled to N tokens (``N = k²`` pools the √P × √P grid to
  k × k, e.g. ViT-B/16's 14 × 14 = 196 patches to 7 × 7 = 49): image bytes × N / L_i;
- ``--text-max-length L``: texts truncated to L tokens: text bytes × mean(min(len, L)) / mean(len).

:func:`reductions` applies both (and their combination) to the size estimate of the splits about to
be encoded (:func:`fusionzoo.encoders.cache_plan.estimate_bytes`: distinct images and texts), with the
token lengths of a sample of the distinct texts; docs/scale.md has their measured effect on accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from fusionzoo.io import human_bytes

__all__ = ["reductions", "reductions_text", "text_lengths"]


def text_lengths(texts: Sequence[str], text_encoder: Any) -> np.ndarray:
    """Token lengths (after the encoder's truncation) of ``texts``."""
    return np.asarray(text_encoder.tokenize(list(texts)).lengths if len(texts) else [0], dtype=np.float64)


def image_options(num_tokens: int, prefix: int) -> list[int]:
    """Pooled token counts to offer: the patch grid's side halved and quartered (k² tokens)."""
    patches = num_tokens - prefix
    side = math.isqrt(max(patches, 0))
    counts = [(side // 2) ** 2, (side // 4) ** 2] if side * side == patches else [patches // 4, patches // 16]
    return sorted({c for c in counts if 1 <= c < patches}, reverse=True)


def reductions(
    image_bytes: float, text_bytes: float, lengths: np.ndarray, image_encoder: Any, text_encoder: Any
) -> list[dict[str, Any]]:
    """Rows ``{"flags", "image", "text", "total"}`` (bytes): the current estimate, then each reduction
    that keeps token sequences (``lengths``: token lengths of a sample of the texts)."""
    current = {"flags": "(now)", "image": float(image_bytes), "text": float(text_bytes)}
    out = [current]
    tokens = image_encoder.num_tokens
    image_choices: list[int] = []
    if image_encoder.token_selection == "all" and tokens > 4:
        image_choices = image_options(tokens, int(getattr(image_encoder, "num_prefix_tokens", 0)))
    text_all = text_encoder.token_selection == "all" and float(lengths.mean()) > 0
    text_choices = [
        n for n in (128, 64, 32) if text_all and n < text_encoder.max_length and n < lengths.max()
    ]

    def text_at(n: int) -> float:
        return current["text"] * float(np.minimum(lengths, n).mean()) / float(lengths.mean())

    for n in image_choices:
        out.append(
            {"flags": f"--image-tokens {n}", "image": current["image"] * n / tokens, "text": current["text"]}
        )
    for n in text_choices:
        out.append({"flags": f"--text-max-length {n}", "image": current["image"], "text": text_at(n)})
    if image_choices and text_choices:
        n, m = image_choices[0], text_choices[-1]
        out.append(
            {"flags": f"--image-tokens {n} --text-max-length {m}", "image": current["image"] * n / tokens,
             "text": text_at(m)}
        )  # fmt: skip
    for row in out:
        row["total"] = row["image"] + row["text"]
    return out


def reductions_text(
    image_bytes: float, text_bytes: float, lengths: np.ndarray, image_encoder: Any, text_encoder: Any
) -> str:
    """One clause per reduction that keeps token sequences, with the cache size it gives ('' if none)."""
    table = reductions(image_bytes, text_bytes, lengths, image_encoder, text_encoder)
    if len(table) == 1:
        return ""
    now = table[0]["total"]
    parts = [f"{r['flags']} → {human_bytes(r['total'])} ({r['total'] / now:.0%})" for r in table[1:]]
    return "Token-level reductions (keep FLUID's token sequences): " + "; ".join(parts) + "."
