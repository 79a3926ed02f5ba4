"""The renderers of the embedded synthetic dataset (:mod:`fusionzoo.data.synth_files`): the listing photo
(a garment silhouette in a colour family, with a nuisance pattern) and the listing text (gender and
material words in the listing's language, a brand), plus their vocabularies.

Every function is deterministic given its ``numpy.random.Generator``.
"""

from __future__ import annotations

import colorsys
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

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


def brand_of(text_key: int, variant: int) -> str:
    return BRANDS[(2 * text_key + variant) % len(BRANDS)]


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
    config: Any,
    geo: str,
    gender: int | None,
    material: int | None,
    brand: str,
    shape: int | None,
    rng: np.random.Generator,
) -> tuple[str, str | None]:
    """``(name, description)`` of a listing; ``gender=None`` → uninformative text. ``config``: the
    :class:`~fusionzoo.data.synth_files.SynthConfig` (its ``empty_description`` rate)."""
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
