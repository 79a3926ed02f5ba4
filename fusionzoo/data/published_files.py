"""Tiny datasets in the exact published layouts of Hateful Memes, UPMC Food-101 and N24News, and a
tiny Hugging Face image-text dataset (examples, contract and end-to-end tests; nothing is downloaded).

Each class has its own image colour and its own words, so a tiny encoder can learn the task."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from PIL import Image

from fusionzoo.data.glami_files import jpeg_bytes

COLOURS = ((200, 30, 30), (30, 60, 200), (30, 160, 60), (220, 200, 40))


def png_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (32, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


# ------------------------------------------------------------------------------------ Hateful Memes
HATEFUL_SPLITS = {"train": 24, "dev_seen": 8, "dev_unseen": 8, "test_seen": 10, "test_unseen": 10}


def hateful_record(index: int, label: int) -> dict[str, Any]:
    meme_id = 10000 + index
    words = ("love your neighbours", "hate those people")[label]
    return {"id": meme_id, "img": f"img/{meme_id:05d}.png", "label": label, "text": f"{words} meme {index}"}


def write_hateful_memes(root: Path, sizes: dict[str, int] | None = None) -> Path:
    """``root/{train,dev_seen,dev_unseen,test_seen,test_unseen}.jsonl`` (``id``, ``img``, ``label``,
    ``text``; labels alternate 0/1) and ``root/img/<id>.png``; returns ``root``."""
    root = Path(root)
    (root / "img").mkdir(parents=True, exist_ok=True)
    start = 0
    for split, count in (sizes or HATEFUL_SPLITS).items():
        records = [hateful_record(start + i, (start + i) % 2) for i in range(count)]
        start += count
        with open(root / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record) + "\n")
                (root / record["img"]).write_bytes(png_bytes(COLOURS[record["label"]]))
    return root


# ----------------------------------------------------------------------------------- UPMC Food-101
FOOD_CLASSES = ("apple_pie", "caesar_salad", "ramen")


def write_food101(root: Path, train: int = 30, test: int = 12, header: bool = False) -> Path:
    """``root/images/{train,test}/<class>/<class>_<n>.jpg`` and ``root/texts/{train,test}_titles.csv``
    (rows ``image_name,text,label``, no header unless ``header``; titles with commas and quotes)."""
    root = Path(root)
    (root / "texts").mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("test", test)):
        rows = []
        for i in range(count):
            label = FOOD_CLASSES[i % len(FOOD_CLASSES)]
            name = f"{label}_{i}.jpg"
            folder = root / "images" / split / label
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(jpeg_bytes(COLOURS[i % len(FOOD_CLASSES)]))
            rows.append([name, f'Best {label.replace("_", " ")} recipe, "easy" #{i}', label])
        with open(root / "texts" / f"{split}_titles.csv", "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            if header:
                writer.writerow(["image_name", "text", "label"])
            writer.writerows(rows)
    return root


# ------------------------------------------------------------------------------------------ N24News
N24_SECTIONS = ("Health", "Books", "Science", "Art & Design")


def write_n24news(root: Path, sizes: dict[str, int] | None = None) -> Path:
    """``root/news/nytimes_{train,dev,test}.json`` (JSON lists of articles with ``section``,
    ``image_id``, ``headline``, ``abstract``, ``caption``, ``article``, ...) and ``root/imgs/<id>.jpg``."""
    root = Path(root)
    (root / "news").mkdir(parents=True, exist_ok=True)
    (root / "imgs").mkdir(parents=True, exist_ok=True)
    start = 0
    for split, count in (sizes or {"train": 32, "dev": 8, "test": 12}).items():
        articles = []
        for i in range(start, start + count):
            section = N24_SECTIONS[i % len(N24_SECTIONS)]
            image_id = f"{i:06x}a{i}"
            (root / "imgs" / f"{image_id}.jpg").write_bytes(jpeg_bytes(COLOURS[i % len(N24_SECTIONS)]))
            word = section.lower().split()[0]
            articles.append(
                {
                    "section": section,
                    "headline": f"{word} headline {i}",
                    "abstract": f"An abstract about {word} number {i}.",
                    "caption": f"A photo for {word} {i}",
                    "article": f"The body of article {i} about {word}. " * 3,
                    "image_id": image_id,
                    "image_url": f"https://static01.nyt.com/images/{image_id}.jpg",
                    "article_url": f"https://www.nytimes.com/{i}.html",
                }
            )
        start += count
        (root / "news" / f"nytimes_{split}.json").write_text(json.dumps(articles), encoding="utf-8")
    return root


# ----------------------------------------------------------------------------- Hugging Face datasets
HF_KINDS = ("bag", "hat", "shoe")
HF_SPLITS = {"train": 24, "validation": 6, "test": 9}


def shade(colour: tuple[int, int, int], index: int) -> tuple[int, int, int]:
    """``colour`` nudged by ``index`` so that every row's image has its own bytes."""
    return (colour[0], colour[1], (colour[2] + 3 * index) % 256)


def hf_rows(count: int, start: int = 0) -> dict[str, list[Any]]:
    """Columns ``image`` (PNG bytes), ``caption`` and ``kind`` (0..2, cycling) of ``count`` rows."""
    kinds = [(start + i) % len(HF_KINDS) for i in range(count)]
    return {
        "image": [
            {"bytes": png_bytes(shade(COLOURS[k], start + i)), "path": None} for i, k in enumerate(kinds)
        ],
        "caption": [f"a {HF_KINDS[k]} photo number {start + i}" for i, k in enumerate(kinds)],
        "kind": kinds,
    }


def hf_dataset_dict(sizes: dict[str, int] | None = None) -> Any:
    """A ``DatasetDict`` with an ``Image`` feature, a ``caption`` and a ``ClassLabel`` ``kind``."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
    from datasets import Image as ImageFeature

    features = Features(
        {"image": ImageFeature(), "caption": Value("string"), "kind": ClassLabel(names=list(HF_KINDS))}
    )
    parts, start = {}, 0
    for split, count in (sizes or HF_SPLITS).items():
        parts[split] = Dataset.from_dict(hf_rows(count, start), features=features)
        start += count
    return DatasetDict(parts)


def write_hf_disk(folder: Path, sizes: dict[str, int] | None = None) -> Path:
    """:func:`hf_dataset_dict` saved with ``save_to_disk`` (``dataset_dict.json`` + Arrow files)."""
    hf_dataset_dict(sizes).save_to_disk(str(folder))
    return Path(folder)


def write_hf_parquet(folder: Path, sizes: dict[str, int] | None = None) -> Path:
    """:func:`hf_dataset_dict` as ``<folder>/<split>.parquet`` (the Hub's Parquet export names)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split, ds in hf_dataset_dict(sizes).items():
        ds.to_parquet(str(folder / f"{split}.parquet"))
    return folder


def write_hf_imagefolder(folder: Path, sizes: dict[str, int] | None = None) -> Path:
    """An ``imagefolder``: ``<folder>/<split>/<n>.png`` with a ``metadata.jsonl`` per split
    (``file_name``, ``caption``, ``kind`` as text)."""
    folder = Path(folder)
    start = 0
    for split, count in (sizes or HF_SPLITS).items():
        (folder / split).mkdir(parents=True, exist_ok=True)
        rows = hf_rows(count, start)
        with open(folder / split / "metadata.jsonl", "w", encoding="utf-8") as handle:
            for i, (image, caption, kind) in enumerate(
                zip(rows["image"], rows["caption"], rows["kind"], strict=True)
            ):
                name = f"{start + i}.png"
                (folder / split / name).write_bytes(image["bytes"])
                handle.write(
                    json.dumps({"file_name": name, "caption": caption, "kind": HF_KINDS[kind]}) + "\n"
                )
        start += count
    return folder
