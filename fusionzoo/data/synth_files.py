"""The embedded default dataset: synthetic fashion listings written in the exact GLAMI-1M layout.

Every class is a cell of a grid of *image attributes* × *text attributes*:

- image only: the garment's **colour** (hue family, jittered) and **shape** (dress / shirt / bag
  silhouette drawn large with PIL); the **pattern** (plain, stripes, dots, checks, in a darker shade of
  the same hue) is a nuisance that carries no label information;
- text only: **gender** (women / men / kids) and **material** (cotton, leather, …) words in the
  listing's language, plus a **brand** word tied to the text attributes in most listings.

So the image alone says which of ``n_colours·n_shapes`` image keys a listing has, the text alone which
of ``n_genders·n_materials`` text keys; only both identify the class. Listings are in the 13 GLAMI
languages (geo codes) from a small lexicon. Realism knobs (all in :class:`SynthConfig`): a Zipf class
prior with ranks spread evenly over image and text keys; ``label_source`` distributed as in GLAMI
(≈25 % ``unknown`` in train, none in test) with noisy labels only on the unknown rows; a fraction of
listings with an uninformative image (empty placeholder) or text (no attribute words), and a fraction
whose image or text belongs to another class (conflicting modality); several listings sharing one
image (the same product in several markets); a few empty descriptions; occasional text leaks of the
shape word, as real product names sometimes carry them.

The dataset is generated deterministically from ``seed`` into ``<out>/GLAMI-1M-dataset`` and read
back through the same loader as GLAMI-1M (:func:`fusionzoo.data.glami.load_glami`). Generation is
cached: ``<out>/fusionzoo-synth.json`` records the parameters' hash and a matching folder is reused;
a new one is built in a temporary folder and renamed into place.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.data.base import DataError, fingerprint_of
from fusionzoo.data.glami import DATASET_FOLDER, GLAMI_COLUMNS, IMAGES_FOLDER, TEST_CSV, TRAIN_CSV, load_glami
from fusionzoo.data.paths import synth_base_dir
from fusionzoo.data.synth_render import (
    COLOURS,
    GENDERS,
    MATERIALS,
    NEUTRAL_BRANDS,
    SHAPES,
    brand_of,
    render_image,
    render_text,
)
from fusionzoo.io import atomic_directory, file_lock

SYNTH_VERSION = 1
PARAMS_FILE = "fusionzoo-synth.json"

GEOS = ("cz", "sk", "ro", "gr", "si", "hu", "hr", "es", "lt", "lv", "tr", "ee", "bg")
GEO_WEIGHTS = (0.18, 0.10, 0.10, 0.08, 0.05, 0.10, 0.06, 0.08, 0.05, 0.04, 0.07, 0.03, 0.06)

# label_source shares from GLAMI-1M (FLUID.md); "unknown" is written as an empty field (NaN) like GLAMI
TRAIN_SOURCES = {"custom-tag": 0.408, "admin": 0.343, "combined-tag": 0.005, "quality-check": 0.001}
TEST_SOURCES = {"custom-tag": 0.543, "admin": 0.456, "quality-check": 0.001}


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of the synthetic dataset; every field is part of the cache key."""

    size: int = 6000  # total listings, train + test
    test_fraction: float = 1 / 6
    image_size: int = 64
    seed: int = 0
    n_colours: int = 3  # image attribute 1 (≤ 6)
    n_shapes: int = 2  # image attribute 2 (≤ 3)
    n_genders: int = 2  # text attribute 1 (≤ 3)
    n_materials: int = 3  # text attribute 2 (≤ 6)
    zipf: float = 0.8  # class prior ∝ rank^-zipf; 0 = balanced
    unknown_fraction: float = 0.25  # train rows with label_source NaN ("unknown")
    noise_rate: float = 0.3  # of the unknown rows, fraction with a wrong (random) label
    uninformative_image: float = 0.04  # placeholder image without the garment
    uninformative_text: float = 0.04  # text without gender/material/brand words
    conflicting_image: float = 0.02  # image of another image key
    conflicting_text: float = 0.02  # text of another text key
    brand_rate: float = 0.7  # listings naming their text key's brand (else a neutral brand)
    shape_leak: float = 0.1  # product names that say the garment type
    empty_description: float = 0.05  # NaN description (attribute words then go into the name)
    shared_image: float = 0.05  # listings re-using another listing's image (same product, other market)
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        limits = {
            "n_colours": len(COLOURS),
            "n_shapes": len(SHAPES),
            "n_genders": len(GENDERS),
            "n_materials": len(MATERIALS),
        }
        for field_name, limit in limits.items():
            value = getattr(self, field_name)
            if not 1 <= value <= limit:
                raise DataError(f"synth {field_name} must be between 1 and {limit}, got {value}")
        if self.num_classes < 2:
            raise DataError("the synthetic dataset needs at least 2 classes")
        if self.size < 4 * self.num_classes:
            raise DataError(
                f"synth size {self.size} is too small for {self.num_classes} classes (≥ {4 * self.num_classes})"
            )
        if not 8 <= self.image_size <= 1024:
            raise DataError(f"synth image_size must be in 8..1024, got {self.image_size}")
        if not 0 < self.test_fraction < 1:
            raise DataError(f"synth test_fraction must be in (0, 1), got {self.test_fraction}")

    @property
    def image_keys(self) -> int:
        return self.n_colours * self.n_shapes

    @property
    def text_keys(self) -> int:
        return self.n_genders * self.n_materials

    @property
    def num_classes(self) -> int:
        return self.image_keys * self.text_keys

    def params_hash(self) -> str:
        return fingerprint_of({"version": SYNTH_VERSION, **dataclasses.asdict(self)})

    @classmethod
    def from_options(cls, **options: Any) -> SynthConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise DataError(
                f"unknown synth option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}"
            )
        return cls(**{k: v for k, v in options.items() if v is not None})


# ------------------------------------------------------------------------------------------ classes
def class_table(config: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    """One row per class: image key (colour, shape), text key (gender, material), id, slug, prior."""
    n_img, n_txt = config.image_keys, config.text_keys
    image_order = rng.permutation(n_img)
    text_order = rng.permutation(n_txt)
    rows = []
    for rank in range(config.num_classes):  # Latin-square spread: top ranks fall in different keys
        a, i = divmod(rank, n_img)
        t = (a + i) % n_txt
        rows.append((rank, int(image_order[i]), int(text_order[t])))
    ids = rng.choice(np.arange(2, 40 * config.num_classes), size=config.num_classes, replace=False)
    table = pd.DataFrame(rows, columns=["rank", "image_key", "text_key"])
    table["colour"] = table["image_key"] // config.n_shapes
    table["shape"] = table["image_key"] % config.n_shapes
    table["gender"] = table["text_key"] // config.n_materials
    table["material"] = table["text_key"] % config.n_materials
    table["category"] = ids
    table["category_name"] = [
        f"{GENDERS[g]}-{COLOURS[c][0]}-{MATERIALS[m]}-{SHAPES[s]}"
        for g, c, m, s in zip(
            table["gender"], table["colour"], table["material"], table["shape"], strict=True
        )
    ]
    prior = (table["rank"].to_numpy() + 1.0) ** -config.zipf
    table["prior"] = prior / prior.sum()
    return table


# ------------------------------------------------------------------------------------------- listing
def _sample_sources(rng: np.random.Generator, n: int, shares: dict[str, float], unknown: float) -> np.ndarray:
    names = list(shares) + ["unknown"]
    known = np.array(list(shares.values()))
    weights = np.append(known / known.sum() * (1 - unknown), unknown)
    return np.array(names, dtype=object)[rng.choice(len(names), size=n, p=weights)]


def build_listings(config: SynthConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(classes, listings)``: every listing's attributes before anything is rendered (deterministic)."""
    rng = np.random.default_rng(config.seed)
    classes = class_table(config, rng)
    n_test = max(config.num_classes, int(round(config.size * config.test_fraction)))
    n_train = config.size - n_test
    records = []
    next_image = 100_000
    item_ids = rng.choice(np.arange(1_000_000, 10_000_000), size=config.size, replace=False)
    cursor = 0
    for split, n in (("train", n_train), ("test", n_test)):
        sources = _sample_sources(
            rng,
            n,
            TRAIN_SOURCES if split == "train" else TEST_SOURCES,
            config.unknown_fraction if split == "train" else 0.0,
        )
        # every class appears at least twice in train and once in test, the rest follows the prior
        base = np.repeat(np.arange(config.num_classes), 2 if split == "train" else 1)
        labels = np.concatenate(
            [base, rng.choice(config.num_classes, size=n - len(base), p=classes["prior"])]
        )
        rng.shuffle(labels)
        geos = rng.choice(len(GEOS), size=n, p=np.array(GEO_WEIGHTS) / sum(GEO_WEIGHTS))
        split_records: list[dict[str, Any]] = []
        for j in range(n):
            cls = classes.iloc[int(labels[j])]
            shared = split_records and rng.random() < config.shared_image
            if shared:  # the same product listed in another market: same class, image and text key
                other = split_records[int(rng.integers(len(split_records)))]
                cls = classes.iloc[other["class"]]
                image = {k: other[k] for k in ("image_id", "img_colour", "img_shape", "image_kind")}
            else:
                image_kind = "normal"
                img_colour, img_shape = int(cls["colour"]), int(cls["shape"])
                u = rng.random()
                if u < config.uninformative_image:
                    image_kind, img_colour, img_shape = "blank", None, None
                elif u < config.uninformative_image + config.conflicting_image:
                    other_key = (
                        int((cls["image_key"] + rng.integers(1, config.image_keys)) % config.image_keys)
                        if config.image_keys > 1
                        else int(cls["image_key"])
                    )
                    image_kind = "conflict"
                    img_colour, img_shape = other_key // config.n_shapes, other_key % config.n_shapes
                image = {
                    "image_id": next_image,
                    "img_colour": img_colour,
                    "img_shape": img_shape,
                    "image_kind": image_kind,
                }
                next_image += int(rng.integers(1, 4))  # non-contiguous like GLAMI
            text_kind = "normal"
            gender, material = int(cls["gender"]), int(cls["material"])
            u = rng.random()
            if u < config.uninformative_text:
                text_kind, gender, material = "blank", None, None
            elif u < config.uninformative_text + config.conflicting_text and config.text_keys > 1:
                other_key = int((cls["text_key"] + rng.integers(1, config.text_keys)) % config.text_keys)
                text_kind = "conflict"
                gender, material = other_key // config.n_materials, other_key % config.n_materials
            text_key = None if gender is None else gender * config.n_materials + material
            if text_key is not None and rng.random() < config.brand_rate:
                brand = brand_of(text_key, int(rng.integers(2)))
            else:
                brand = NEUTRAL_BRANDS[int(rng.integers(len(NEUTRAL_BRANDS)))]
            leak = int(cls["shape"]) if rng.random() < config.shape_leak else None
            label = int(labels[j]) if not shared else int(other["class"])
            source = str(sources[j])
            noisy = source == "unknown" and rng.random() < config.noise_rate
            given = label
            if noisy:
                given = int((label + rng.integers(1, config.num_classes)) % config.num_classes)
            split_records.append(
                {
                    "split": split,
                    "item_id": str(item_ids[cursor]),
                    "geo": GEOS[int(geos[j])],
                    "class": label,
                    "given_class": given,
                    "gender": gender,
                    "material": material,
                    "brand": brand,
                    "leak_shape": leak,
                    "text_kind": text_kind,
                    "label_source": source,
                    "noisy": noisy,
                    "text_seed": int(rng.integers(2**31)),
                    "image_seed": int(rng.integers(2**31)),
                    **image,
                }
            )
            cursor += 1
        records.extend(split_records)
    return classes, pd.DataFrame.from_records(records)


def write_dataset(config: SynthConfig, out: Path) -> dict[str, Any]:
    """Render and write the dataset into ``out`` (``out/GLAMI-1M-dataset/...``); returns statistics."""
    started = time.perf_counter()
    classes, listings = build_listings(config)
    dataset_dir = out / DATASET_FOLDER
    images_dir = dataset_dir / IMAGES_FOLDER
    images_dir.mkdir(parents=True, exist_ok=True)
    written: set[int] = set()
    for row in listings.itertuples(index=False):
        if row.image_id in written:
            continue
        colour = None if row.image_kind == "blank" else int(row.img_colour)
        shape = None if row.image_kind == "blank" else int(row.img_shape)
        image = render_image(config.image_size, colour, shape, np.random.default_rng(row.image_seed))
        image.save(images_dir / f"{row.image_id}.jpg", format="JPEG", quality=config.jpeg_quality)
        written.add(row.image_id)
    names, descriptions = [], []
    for row in listings.itertuples(index=False):
        gender = None if row.gender is None or pd.isna(row.gender) else int(row.gender)
        material = None if row.material is None or pd.isna(row.material) else int(row.material)
        leak = None if row.leak_shape is None or pd.isna(row.leak_shape) else int(row.leak_shape)
        name, description = render_text(
            config, row.geo, gender, material, row.brand, leak, np.random.default_rng(row.text_seed)
        )
        names.append(name)
        descriptions.append(description)
    given = classes.iloc[listings["given_class"].to_numpy()]
    frame = pd.DataFrame(
        {
            "item_id": listings["item_id"],
            "image_id": listings["image_id"].astype(str),
            "geo": listings["geo"],
            "name": names,
            "description": descriptions,
            "category": given["category"].to_numpy(),
            "category_name": given["category_name"].to_numpy(),
            "label_source": listings["label_source"].where(listings["label_source"] != "unknown", None),
        }
    )[list(GLAMI_COLUMNS)]
    for split, csv_name in (("train", TRAIN_CSV), ("test", TEST_CSV)):
        frame.loc[listings["split"] == split].to_csv(dataset_dir / csv_name, index=False, encoding="utf-8")
    stats = {
        "rows": {
            "train": int((listings["split"] == "train").sum()),
            "test": int((listings["split"] == "test").sum()),
        },
        "images": len(written),
        "classes": config.num_classes,
        "noisy_labels": int(listings["noisy"].sum()),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return stats


def read_params(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / PARAMS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_current(out: Path, config: SynthConfig) -> bool:
    params = read_params(out)
    return (
        params is not None
        and params.get("hash") == config.params_hash()
        and (out / DATASET_FOLDER / TRAIN_CSV).is_file()
        and (out / DATASET_FOLDER / TEST_CSV).is_file()
    )


def default_out(config: SynthConfig, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<data dir>/synth/n<size>-s<seed>-<hash>``: one folder per parameter set."""
    return synth_base_dir(data_dir) / f"n{config.size}-s{config.seed}-{config.params_hash()[:10]}"


def ensure_synth(
    config: SynthConfig | None = None,
    out: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> Path:
    """Generate the dataset into ``out`` unless an identical one is there; returns ``out``.

    The new dataset is written to a temporary sibling folder and renamed into place, so a reader never
    sees a half-written dataset; concurrent callers serialise on a lock file.
    """
    config = config or SynthConfig()
    out = Path(out).expanduser().resolve() if out is not None else default_out(config, data_dir)
    if not force and is_current(out, config):
        return out
    with file_lock(out.parent / f".{out.name}.lock"):
        if not force and is_current(out, config):
            return out
        if (
            out.exists()
            and any(out.iterdir())
            and read_params(out) is None
            and not (out / DATASET_FOLDER).exists()
        ):
            raise DataError(f"{out} exists and is not a fusionzoo synthetic dataset; choose another --out")
        with atomic_directory(out) as tmp:
            stats = write_dataset(config, tmp)
            params = {
                "hash": config.params_hash(),
                "version": SYNTH_VERSION,
                "config": dataclasses.asdict(config),
                "stats": stats,
            }
            (tmp / PARAMS_FILE).write_text(json.dumps(params, indent=1), encoding="utf-8")
    return out


def load_synth(
    config: SynthConfig | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    **load_options: Any,
):
    """Generate-or-reuse the synthetic dataset and load it with the GLAMI loader."""
    config = config or SynthConfig()
    root = ensure_synth(config, out, data_dir=data_dir)
    splits = load_glami(root, data_dir=data_dir, name="synth", **load_options)
    splits.info["synth"] = read_params(root)
    return splits
