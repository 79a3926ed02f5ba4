"""Shared by the second check set's tests: benchmarks/checkset2 loaded by path, and hand-made inputs in
the three npm packages' layouts (CLDR annotations for 13 locales, a tiny TrueType font, an emoji list)."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import tarfile
from pathlib import Path

from checkset_helpers import CHECKSET_DIR, ROOT

CHECKSET2_DIR = ROOT / "benchmarks" / "checkset2"
for folder in (CHECKSET2_DIR, CHECKSET_DIR):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"checkset2_{name}", CHECKSET2_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build2 = _load("build")
glyph_select = importlib.import_module("glyph_select")
glyph_source = importlib.import_module("glyph_source")
glyph_render = importlib.import_module("glyph_render")

ARROWS = "←→↚↛↞↠⇐⇒"  # Arrows: families ARROW, ARROW WITH STROKE, TWO HEADED ARROW, DOUBLE ARROW
MATH = "∀∃∈∉∑∏√∞"  # Mathematical Operators: 8 families
DROPPED = {
    "😀": "emoji",
    "☀": "emoji",
    "#️⃣": "sequence",
    "∅": "not in bg",
    "∆": "no glyph",
    "\u2028": "separator",
}
TINY2 = glyph_select.GlyphParams(min_chars=4, items_per_image=5.0, image_width=48, image_height=48)


def npm_tarball(path: Path, files: dict[str, bytes], name: str, version: str = "0.0.1") -> Path:
    """An npm-like ``.tgz`` (members under ``package/``)."""
    files = {"package/package.json": json.dumps({"name": name, "version": version}).encode(), **files}
    with tarfile.open(path, "w:gz") as archive:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mtime = 0
            archive.addfile(info, io.BytesIO(data))
    return path


def cldr_tarball(path: Path) -> Path:
    """Annotations for the 13 GLAMI locales: every symbol named ``<locale> <code point>`` with two
    keywords (the name among them, as CLDR does), except ``∅`` in Bulgarian."""
    files = {}
    for locale in glyph_source.LOCALES.values():
        entries = {}
        for symbol in [*ARROWS, *MATH, *DROPPED]:
            if symbol == "∅" and locale == "bg":
                continue
            name = f"{locale} {ord(symbol[0]):04x}"
            entries[symbol] = {"default": [name, f"{locale} keyword"], "tts": [name]}
        document = {"annotations": {"identity": {"language": locale}, "annotations": entries}}
        files[f"package/annotations/{locale}/annotations.json"] = json.dumps(document).encode()
    return npm_tarball(path, files, "cldr-annotations-full")


def emoji_tarball(path: Path) -> Path:
    files = {
        "package/data-by-emoji.json": json.dumps(
            {"😀": {"name": "grinning face"}, "☀️": {"name": "sun"}}
        ).encode(),
        "package/data-emoji-components.json": json.dumps({"light_skin_tone": "🏻"}).encode(),
    }
    return npm_tarball(path, files, "unicode-emoji-json")


def tiny_font(chars: str) -> bytes:
    """A TrueType font (fontTools' FontBuilder) with one polygon glyph per character of ``chars``."""
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    names = {c: f"uni{ord(c):04X}" for c in chars}
    order = [".notdef", *names.values()]
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder(order)
    builder.setupCharacterMap({ord(c): n for c, n in names.items()})
    glyphs = {}
    for index, name in enumerate(order):
        pen = TTGlyphPen(None)
        if index:
            corners = 3 + index % 4  # triangles, squares, pentagons, hexagons of varying width
            width = 200 + 60 * (index % 7)
            import math

            points = [
                (
                    500 + width * math.cos(2 * math.pi * k / corners),
                    350 + 300 * math.sin(2 * math.pi * k / corners),
                )
                for k in range(corners)
            ]
            pen.moveTo(points[0])
            for point in points[1:]:
                pen.lineTo(point)
            pen.closePath()
        glyphs[name] = pen.glyph()
    builder.setupGlyf(glyphs)
    builder.setupHorizontalMetrics({name: (1000, 0) for name in order})
    builder.setupHorizontalHeader(ascent=800, descent=-200)
    builder.setupNameTable({"familyName": "Tiny", "styleName": "Regular"})
    builder.setupOS2(sTypoAscender=800, sTypoDescender=-200, usWinAscent=800, usWinDescent=200)
    builder.setupPost()
    out = io.BytesIO()
    builder.save(out)
    return out.getvalue()


def fonts_tarball(path: Path) -> Path:
    """The four DejaVu file names; Sans Mono lacks the arrows; no font has ``∆``."""
    every = ARROWS + MATH + "😀☀∅\u2028"
    files = {f"package/ttf/{name}.ttf": tiny_font(every) for name in glyph_source.FONTS[:3]}
    files["package/ttf/DejaVuSansMono.ttf"] = tiny_font(MATH)
    return npm_tarball(path, files, "dejavu-fonts-ttf")


def tarballs(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "cldr": cldr_tarball(folder / "cldr-annotations-full-0.0.1.tgz"),
        "fonts": fonts_tarball(folder / "dejavu-fonts-ttf-0.0.1.tgz"),
        "emoji": emoji_tarball(folder / "unicode-emoji-json-0.0.1.tgz"),
    }
