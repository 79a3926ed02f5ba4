"""A tiny dataset in fusionzoo's own split format, for tests of anything that consumes splits or encoders.

:func:`write_tiny_glami` writes ``data.csv`` with the columns of ``fusionzoo.data.base.COLUMNS`` and
small JPEGs (PIL): the label is fixed by the image's colour and a material word in the text, and
``bad`` rows get unreadable image files. :func:`splits_from_csv` reads it as a
:class:`~fusionzoo.data.base.DatasetSplits` (60/20/20 by row order), :func:`tiny_glami_splits` both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fusionzoo.data.base import DatasetSplits, fingerprint_of

COLOURS = ((220, 40, 40), (40, 190, 60), (50, 70, 220), (230, 210, 40))
MATERIALS = ("cotton", "leather", "wool", "silk")


def write_tiny_glami(
    root: str | Path, n: int = 48, seed: int = 0, bad: Sequence[int] = (), image_size: int = 32
) -> Path:
    """Write ``data.csv`` (COLUMNS) and ``images/<i>.jpg`` under ``root``; returns the CSV path."""
    from PIL import Image

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        colour, material = int(rng.integers(len(COLOURS))), int(rng.integers(len(MATERIALS)))
        path = root / "images" / f"{i}.jpg"
        if i in bad:
            path.write_bytes(b"this is not a jpeg")
        else:
            pixels = np.clip(
                np.array(COLOURS[colour])[None, None, :] + rng.normal(0, 12, (image_size, image_size, 3)),
                0,
                255,
            ).astype(np.uint8)
            Image.fromarray(pixels).save(path, quality=90)
        words = " ".join(
            rng.choice(["nice", "new", "shirt", "sale", "summer", "size"], int(rng.integers(1, 12)))
        )
        rows.append(
            {
                "item_id": f"item{i}",
                "image_path": str(path.resolve()),
                "text": f"{MATERIALS[material]} {words}",
                "label": (colour + 2 * material) % 4,
                "geo": ("cz", "sk", "ro")[i % 3],
                "label_source": "admin" if i % 4 else "unknown",
                "is_human": bool(i % 4),
            }
        )
    csv = root / "data.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def splits_from_csv(csv: str | Path, name: str = "tiny") -> DatasetSplits:
    """Read a :func:`write_tiny_glami` CSV as train/val/test (60/20/20 by row order).

    The fingerprint covers the CSV's path, size, mtime and content hash, like the real loaders.
    """
    csv = Path(csv)
    frame = pd.read_csv(csv, dtype={"item_id": str}, keep_default_na=False)
    frame["is_human"] = frame["is_human"].astype(str).str.lower().eq("true")
    stat = csv.stat()
    digest = hashlib.sha256(csv.read_bytes()).hexdigest()
    fingerprint = fingerprint_of(
        {"csv": str(csv), "size": stat.st_size, "mtime": stat.st_mtime_ns, "sha": digest}
    )
    n = len(frame)
    train_end, val_end = n * 6 // 10, n * 8 // 10
    return DatasetSplits(
        name=name,
        root=csv.parent,
        train=frame.iloc[:train_end].reset_index(drop=True),
        val=frame.iloc[train_end:val_end].reset_index(drop=True),
        test=frame.iloc[val_end:].reset_index(drop=True),
        classes=[f"class{i}" for i in range(4)],
        fingerprint=fingerprint,
    )


def tiny_glami_splits(root: str | Path, n: int = 48, seed: int = 0, bad: Sequence[int] = ()) -> DatasetSplits:
    return splits_from_csv(write_tiny_glami(root, n, seed, bad))
