"""Rendering one icon: a seeded style, the SVG placed on a white canvas, rasterised by cairosvg and
saved as JPEG by Pillow; and the versions of what renders (recorded in build-info.json)."""

from __future__ import annotations

import io
import platform
import re
import xml.etree.ElementTree as ET
from typing import Any

from checkset_common import BuildError

SVG_NS = "http://www.w3.org/2000/svg"


# ------------------------------------------------------------------------------------------ render
def compose_svg(svg: bytes, width: int, height: int, style: dict[str, Any]) -> bytes:
    """The icon's drawing placed on a white ``width``×``height`` canvas with ``style``'s fill and box."""
    try:
        root = ET.fromstring(svg)
    except ET.ParseError as exc:
        raise BuildError(f"icon SVG is not valid XML: {exc}") from None
    view_box = [float(v) for v in re.split(r"[ ,]+", root.get("viewBox", "0 0 24 24").strip())]
    if len(view_box) != 4 or view_box[2] <= 0 or view_box[3] <= 0:
        raise BuildError(f"icon SVG has an unusable viewBox {root.get('viewBox')!r}")
    min_x, min_y, box_w, box_h = view_box
    scale = style["side"] / max(box_w, box_h)
    ET.register_namespace("", SVG_NS)  # children serialise as <path ...>, not <ns0:path ...>
    inner = "".join(ET.tostring(child, encoding="unicode") for child in root)
    transform = (
        f"translate({style['x']:.4f},{style['y']:.4f}) scale({scale:.6f}) translate({-min_x},{-min_y})"
    )
    return (
        f'<svg xmlns="{SVG_NS}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><rect width="{width}" height="{height}" fill="#ffffff"/>'
        f'<g transform="{transform}" fill="{style["fill"]}">{inner}</g></svg>'
    ).encode()


def render_jpeg(svg: bytes, width: int, height: int, style: dict[str, Any], quality: int = 90) -> bytes:
    """SVG → RGB JPEG bytes (cairosvg rasterises, Pillow encodes)."""
    try:
        import cairosvg
    except (ImportError, OSError) as exc:
        raise BuildError(
            f"cairosvg is needed to render the icons ({exc}); "
            "pip install -e '.[checkset]' (and apt-get install libcairo2)"
        ) from None
    from PIL import Image

    png = cairosvg.svg2png(
        bytestring=compose_svg(svg, width, height, style), output_width=width, output_height=height
    )
    with Image.open(io.BytesIO(png)) as image:
        rgba = image.convert("RGBA")
    canvas = Image.new("RGB", rgba.size, (255, 255, 255))
    canvas.paste(rgba, mask=rgba.getchannel("A"))
    out = io.BytesIO()
    canvas.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in ("cairosvg", "cairocffi", "pillow", "numpy"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    try:
        import cairocffi

        out["libcairo"] = cairocffi.cairo_version_string()
    except (ImportError, OSError, AttributeError):  # informational only
        out["libcairo"] = "unknown"
    return {k: str(v) for k, v in out.items()}
