"""Drawing one symbol: a font chosen per image (seeded, among the fonts that have it), the glyph scaled
to the seeded style's box (:func:`checkset_common.render_style`: colour, size, offset) on white,
rasterised by Pillow's FreeType and saved as JPEG; and the versions of what draws (build-info.json)."""

from __future__ import annotations

import io
import platform
from functools import lru_cache
from typing import Any

import numpy as np
from checkset_common import BuildError
from PIL import Image, ImageDraw, ImageFont

BASE_SIZE = 256  # font size at which the glyph's box is measured before scaling to the style's box


@lru_cache(maxsize=64)
def _font(data: bytes, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(io.BytesIO(data), size=size)


def font_cmap(data: bytes) -> set[int]:
    """The code points a TrueType font draws (its best cmap)."""
    from fontTools.ttLib import TTFont

    return set(TTFont(io.BytesIO(data)).getBestCmap())


def choose_font(seed: int, image_id: str, fonts: list[str]) -> str:
    """A seeded pick among the fonts that have the glyph (the same for a given image)."""
    return fonts[int(np.random.default_rng([seed, 5, int(image_id)]).integers(len(fonts)))]


def render_glyph(
    font: bytes, char: str, width: int, height: int, style: dict[str, Any], quality: int = 90
) -> bytes:
    """``char`` in ``style["fill"]``, its ink box scaled to ``style["side"]`` and centred in the box at
    (``style["x"]``, ``style["y"]``), on a white ``width``×``height`` canvas; RGB JPEG bytes."""
    left, top, right, bottom = _font(font, BASE_SIZE).getbbox(char)
    if right <= left or bottom <= top:
        raise BuildError(f"the font draws nothing for {char!r} (U+{ord(char):04X})")
    size = max(4, int(round(BASE_SIZE * style["side"] / max(right - left, bottom - top))))
    scaled = _font(font, size)
    left, top, right, bottom = scaled.getbbox(char)
    x = style["x"] + (style["side"] - (right - left)) / 2 - left
    y = style["y"] + (style["side"] - (bottom - top)) / 2 - top
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    ImageDraw.Draw(canvas).text((x, y), char, font=scaled, fill=style["fill"])
    out = io.BytesIO()
    canvas.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from PIL import features

    out = {"python": platform.python_version(), "freetype": str(features.version("freetype2"))}
    for package in ("pillow", "fonttools", "numpy"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out
