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

import colorsys
import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from fusionzoo.data.base import DataError, fingerprint_of
from fusionzoo.data.glami import DATASET_FOLDER, GLAMI_COLUMNS, IMAGES_FOLDER, TEST_CSV, TRAIN_CSV
from fusionzoo.data.paths import synth_base_dir

SYNTH_VERSION = 1
PARAMS_FILE = "fusionzoo-synth.json"

GEOS = ("cz", "sk", "ro", "gr", "si", "hu", "hr", "es", "lt", "lv", "tr", "ee", "bg")
GEO_WEIGHTS = (0.18, 0.10, 0.10, 0.08, 0.05, 0.10, 0.06, 0.08, 0.05, 0.04, 0.07, 0.03, 0.06)

# label_source shares from GLAMI-1M (FLUID.md); "unknown" is written as an empty field (NaN) like GLAMI
TRAIN_SOURCES = {"custom-tag": 0.408, "admin": 0.343, "combined-tag": 0.005, "quality-check": 0.001}
TEST_SOURCES = {"custom-tag": 0.543, "admin": 0.456, "quality-check": 0.001}

# hue (degrees) of each colour family; the first n_colours are used
COLOURS = (("red", 0), ("blue", 220), ("green", 125), ("yellow", 55), ("purple", 285), ("orange", 28))
SHAPES = ("dress", "shirt", "bag")
GENDERS = ("women", "men", "kids")
MATERIALS = ("cotton", "leather", "wool", "silk", "denim", "linen")
PATTERNS = ("plain", "stripes", "dots", "checks")
BRANDS = (
    "Nordlund", "Valeria", "Kastor", "Bellamy", "Orvento", "Lumina", "Tessaro", "Gravik", "Morelle",
    "Quintaro", "Zephyra", "Halden", "Corvina", "Aurelle", "Briska", "Dunmore", "Eskelo", "Fiorana",
    "Gantrix", "Ilvasco", "Jorvik", "Keldara", "Lornet", "Mirabo", "Sandor", "Telvani", "Umbrio",
    "Vardenn", "Wexley", "Yaraki", "Zolten", "Perlina", "Ostrava", "Nimbra", "Marlow", "Lindqvist",
)  # fmt: skip
NEUTRAL_BRANDS = ("Basics", "Outlet", "Modena", "Trendy")

# geo -> gender words, material words, generic item word, "material" label, shape words, filler phrases
LEXICON: dict[str, dict[str, Any]] = {
    "cz": dict(gender=("dámské", "pánské", "dětské"), material=("bavlna", "kůže", "vlna", "hedvábí", "džínovina", "len"), item="kousek", label="Materiál", shape=("šaty", "tričko", "kabelka"), filler=("Pohodlný střih.", "Vhodné na každý den.", "Nový model sezóny.")),
    "sk": dict(gender=("dámske", "pánske", "detské"), material=("bavlna", "koža", "vlna", "hodváb", "rifľovina", "ľan"), item="kúsok", label="Materiál", shape=("šaty", "tričko", "kabelka"), filler=("Pohodlný strih.", "Vhodné na každý deň.", "Nový model sezóny.")),
    "ro": dict(gender=("damă", "bărbați", "copii"), material=("bumbac", "piele", "lână", "mătase", "denim", "in"), item="articol", label="Material", shape=("rochie", "tricou", "geantă"), filler=("Croială confortabilă.", "Potrivit pentru fiecare zi.", "Model nou de sezon.")),
    "gr": dict(gender=("γυναικείο", "ανδρικό", "παιδικό"), material=("βαμβάκι", "δέρμα", "μαλλί", "μετάξι", "τζιν", "λινό"), item="κομμάτι", label="Υλικό", shape=("φόρεμα", "μπλούζα", "τσάντα"), filler=("Άνετη γραμμή.", "Ιδανικό για κάθε μέρα.", "Νέο μοντέλο της σεζόν.")),
    "si": dict(gender=("ženske", "moške", "otroške"), material=("bombaž", "usnje", "volna", "svila", "jeans", "lan"), item="kos", label="Material", shape=("obleka", "majica", "torbica"), filler=("Udoben kroj.", "Primerno za vsak dan.", "Nov model sezone.")),
    "hu": dict(gender=("női", "férfi", "gyerek"), material=("pamut", "bőr", "gyapjú", "selyem", "farmer", "len"), item="darab", label="Anyag", shape=("ruha", "póló", "táska"), filler=("Kényelmes szabás.", "Mindennapi viseletre.", "Új szezonális modell.")),
    "hr": dict(gender=("ženske", "muške", "dječje"), material=("pamuk", "koža", "vuna", "svila", "traper", "lan"), item="komad", label="Materijal", shape=("haljina", "majica", "torba"), filler=("Udoban kroj.", "Prikladno za svaki dan.", "Novi model sezone.")),
    "es": dict(gender=("mujer", "hombre", "niños"), material=("algodón", "cuero", "lana", "seda", "vaquero", "lino"), item="prenda", label="Material", shape=("vestido", "camiseta", "bolso"), filler=("Corte cómodo.", "Ideal para cada día.", "Nuevo modelo de temporada.")),
    "lt": dict(gender=("moteriški", "vyriški", "vaikiški"), material=("medvilnė", "oda", "vilna", "šilkas", "džinsas", "linas"), item="gaminys", label="Medžiaga", shape=("suknelė", "marškinėliai", "rankinė"), filler=("Patogus kirpimas.", "Tinka kiekvienai dienai.", "Naujas sezono modelis.")),
    "lv": dict(gender=("sieviešu", "vīriešu", "bērnu"), material=("kokvilna", "āda", "vilna", "zīds", "džinss", "lins"), item="prece", label="Materiāls", shape=("kleita", "krekls", "soma"), filler=("Ērts piegriezums.", "Piemērots katrai dienai.", "Jauns sezonas modelis.")),
    "tr": dict(gender=("kadın", "erkek", "çocuk"), material=("pamuk", "deri", "yün", "ipek", "kot", "keten"), item="ürün", label="Malzeme", shape=("elbise", "tişört", "çanta"), filler=("Rahat kesim.", "Her gün için uygun.", "Yeni sezon modeli.")),
    "ee": dict(gender=("naiste", "meeste", "laste"), material=("puuvill", "nahk", "vill", "siid", "teksa", "linane"), item="toode", label="Materjal", shape=("kleit", "särk", "kott"), filler=("Mugav lõige.", "Sobib igaks päevaks.", "Uus hooaja mudel.")),
    "bg": dict(gender=("дамски", "мъжки", "детски"), material=("памук", "кожа", "вълна", "коприна", "деним", "лен"), item="артикул", label="Материя", shape=("рокля", "тениска", "чанта"), filler=("Удобна кройка.", "Подходящ за всеки ден.", "Нов модел за сезона.")),
}  # fmt: skip

# silhouettes in unit coordinates (x right, y down); drawn large so small encoders can read them
_DRESS = [(0.40, 0.08), (0.60, 0.08), (0.63, 0.34), (0.84, 0.94), (0.16, 0.94), (0.37, 0.34)]
_SHIRT = [
    (0.24, 0.14), (0.76, 0.14), (0.97, 0.42), (0.80, 0.52), (0.74, 0.40), (0.74, 0.90),
    (0.26, 0.90), (0.26, 0.40), (0.20, 0.52), (0.03, 0.42),
]  # fmt: skip


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


def brand_of(text_key: int, variant: int) -> str:
    return BRANDS[(2 * text_key + variant) % len(BRANDS)]


# ------------------------------------------------------------------------------------------- images
def _hsv(hue_deg: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((hue_deg % 360) / 360.0, saturation, value)
    return int(r * 255), int(g * 255), int(b * 255)


def render_image(size: int, colour: int | None, shape: int | None, rng: np.random.Generator) -> Image.Image:
    """A listing photo: light background, a large garment silhouette in a colour family and a pattern.

    ``colour=None`` renders the uninformative placeholder (grey background, faint grey box).
    """
    background = tuple(int(v) for v in rng.integers(205, 246, size=3))
    image = Image.new("RGB", (size, size), background)
    if colour is None or shape is None:
        draw = ImageDraw.Draw(image)
        grey = int(rng.integers(150, 190))
        m = size * float(rng.uniform(0.25, 0.35))
        draw.rectangle((m, m, size - m, size - m), outline=(grey, grey, grey), width=max(1, size // 32))
        return image
    hue = COLOURS[colour][1] + float(rng.uniform(-12, 12))
    saturation, value = float(rng.uniform(0.65, 1.0)), float(rng.uniform(0.6, 0.95))
    main = _hsv(hue, saturation, value)
    shade = _hsv(hue, saturation, value * 0.55)
    scale = float(rng.uniform(0.85, 1.05)) * size
    dx, dy = (float(v) * size for v in rng.uniform(-0.06, 0.06, size=2))

    def xy(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [((x - 0.5) * scale + size / 2 + dx, (y - 0.5) * scale + size / 2 + dy) for x, y in points]

    mask = Image.new("L", (size, size), 0)
    mdraw = ImageDraw.Draw(mask)
    if SHAPES[shape] == "dress":
        mdraw.polygon(xy(_DRESS), fill=255)
    elif SHAPES[shape] == "shirt":
        mdraw.polygon(xy(_SHIRT), fill=255)
    else:  # bag: wide body and a thick handle
        (x0, y0), (x1, y1) = xy([(0.10, 0.42), (0.90, 0.92)])
        mdraw.rounded_rectangle((x0, y0, x1, y1), radius=size * 0.08, fill=255)
        (h0, k0), (h1, k1) = xy([(0.30, 0.12), (0.70, 0.60)])
        mdraw.arc((h0, k0, h1, k1), 180, 360, fill=255, width=max(2, size // 12))

    fill = Image.new("RGB", (size, size), main)
    fdraw = ImageDraw.Draw(fill)
    pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
    step = max(4, int(size * float(rng.uniform(0.14, 0.2))))
    width = max(1, step // 3)
    if pattern == "stripes":
        for offset in range(0, size, step):
            fdraw.rectangle((0, offset, size, offset + width), fill=shade)
    elif pattern == "dots":
        r = max(1, step // 4)
        for cy in range(step // 2, size, step):
            for cx in range(step // 2, size, step):
                fdraw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=shade)
    elif pattern == "checks":
        for offset in range(0, size, step):
            fdraw.rectangle((0, offset, size, offset + width), fill=shade)
            fdraw.rectangle((offset, 0, offset + width, size), fill=shade)
    image.paste(fill, (0, 0), mask)
    return image


# --------------------------------------------------------------------------------------------- texts
def render_text(
    config: SynthConfig,
    geo: str,
    gender: int | None,
    material: int | None,
    brand: str,
    shape: int | None,
    rng: np.random.Generator,
) -> tuple[str, str | None]:
    """``(name, description)`` of a listing; ``gender=None`` → uninformative text."""
    words = LEXICON[geo]
    fillers = list(words["filler"])
    rng.shuffle(fillers)
    item = words["shape"][shape] if shape is not None else words["item"]
    if gender is None or material is None:
        return f"{brand} {item}", " ".join(fillers[:2])
    name = f"{brand} {words['gender'][gender]} {item}"
    if rng.random() < config.empty_description:
        return f"{name} {words['material'][material]}", None
    return (
        name,
        f"{words['label']}: {words['material'][material]}. {' '.join(fillers[: int(rng.integers(1, 3))])}",
    )


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


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (POSIX); a no-op where fcntl is unavailable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
    with _locked(out.parent / f".{out.name}.lock"):
        if not force and is_current(out, config):
            return out
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            stats = write_dataset(config, tmp)
            params = {
                "hash": config.params_hash(),
                "version": SYNTH_VERSION,
                "config": dataclasses.asdict(config),
                "stats": stats,
            }
            (tmp / PARAMS_FILE).write_text(json.dumps(params, indent=1), encoding="utf-8")
            old = None
            if out.exists():
                if any(out.iterdir()) and read_params(out) is None and not (out / DATASET_FOLDER).exists():
                    raise DataError(
                        f"{out} exists and is not a fusionzoo synthetic dataset; choose another --out"
                    )
                old = out.with_name(f".{out.name}.old-{os.getpid()}")
                os.replace(out, old)
            os.replace(tmp, out)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_synth(
    config: SynthConfig | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    **load_options: Any,
):
    """Generate-or-reuse the synthetic dataset and load it with the GLAMI loader."""
    from fusionzoo.data.glami import load_glami

    config = config or SynthConfig()
    root = ensure_synth(config, out, data_dir=data_dir)
    splits = load_glami(root, data_dir=data_dir, name="synth", **load_options)
    splits.info["synth"] = read_params(root)
    return splits
