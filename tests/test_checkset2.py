"""benchmarks/checkset2: the second check set's rules on hand-made inputs (CLDR annotations, a tiny
TrueType font, an emoji list), a whole build read by the GLAMI loader, and the fetch from a loopback
npm registry; nothing here needs the network."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections import Counter

import numpy as np
import pytest
from checkset2_helpers import (
    ARROWS,
    MATH,
    TINY2,
    build2,
    glyph_render,
    glyph_select,
    glyph_source,
    tarballs,
    tiny_font,
)
from checkset_helpers import loopback_registry
from rich.console import Console


def quiet() -> Console:
    return Console(file=io.StringIO())


def read_inputs(folder):
    paths = tarballs(folder)
    cldr, _ = glyph_source.read_cldr(paths["cldr"])
    emoji, _ = glyph_source.read_emoji(paths["emoji"])
    fonts, _ = glyph_source.read_fonts(paths["fonts"])
    return cldr, emoji, {name: glyph_render.font_cmap(data) for name, data in fonts.items()}, fonts


# ------------------------------------------------------------------------------------------ rules
def test_mirror_images_share_a_family_and_other_symbols_do_not():
    family = glyph_select.family_of
    assert family("←") == family("→") == family("↑") == "ARROW"
    assert family("⇐") == family("⇒") == "DOUBLE ARROW" != family("←")
    assert family("∈") == "ELEMENT OF" and family("∉") == "NOT AN ELEMENT OF"
    assert glyph_select.description("šipka", ["šipka", "vpravo", " ", "Šipka"]) == "vpravo"


def test_eligible_glyphs_drop_emoji_sequences_separators_partial_names_and_missing_glyphs(tmp_path):
    cldr, emoji, cmaps, _ = read_inputs(tmp_path)
    assert set(cldr) == set(glyph_source.LOCALES) and cldr["gr"]["←"]["tts"] == "el 2190"
    glyphs, dropped = glyph_select.eligible_glyphs(cldr, emoji, cmaps)
    assert dropped == {
        "emoji": 2,  # 😀, and ☀ (listed as ☀️ with a variation selector)
        "in none of the fonts": 1,  # ∆
        "not named in all 13 languages": 1,  # ∅ has no Bulgarian name
        "sequence of several code points": 1,  # #️⃣
        "space or control character": 1,  # U+2028
    }
    assert sorted(g.char for g in glyphs) == sorted(ARROWS + MATH)
    arrow = next(g for g in glyphs if g.char == "→")
    assert (
        arrow.label == "Arrows" and arrow.tags == ["Arrows", "Sm"] and arrow.name == "U+2192 RIGHTWARDS ARROW"
    )
    assert "DejaVuSansMono" not in arrow.fonts  # the mono font has no arrows
    assert arrow.texts["cz"] == ("cs 2192", "cs keyword") and arrow.texts["ee"][0] == "et 2192"
    with pytest.raises(build2.BuildError, match="lower --min-chars"):
        glyph_select.choose_classes(glyphs, 9)


def test_items_are_one_per_language_per_image_and_deterministic(tmp_path):
    cldr, emoji, cmaps, _ = read_inputs(tmp_path)
    glyphs, _ = glyph_select.eligible_glyphs(cldr, emoji, cmaps)
    chosen, available = glyph_select.choose_classes(glyphs, 4)
    assert available == {"Arrows": 8, "Mathematical Operators": 8}
    test = build2.split_by_family(chosen, 0.25, 0)
    for family in {g.family for g in chosen}:  # a family never straddles the split
        assert len({g.name in test for g in chosen if g.family == family}) == 1
    images, items = glyph_select.make_items(chosen, test, TINY2)
    assert len(images) == 16 and len({i["item_id"] for i in items}) == len(items)
    per_image = Counter(i["image_id"] for i in items)
    assert all(1 <= n <= 13 for n in per_image.values())
    for image_id in per_image:  # one item per language of an image
        geos = [i["geo"] for i in items if i["image_id"] == image_id]
        assert len(geos) == len(set(geos))
    item = items[0]
    assert item["name"] == f"{glyph_source.LOCALES[item['geo']]} {item['name'].split()[1]}"
    assert glyph_select.make_items(chosen, test, TINY2) == (images, items)


def test_render_draws_the_glyph_deterministically_on_white():
    from PIL import Image

    font = tiny_font("∀")
    style = {"fill": "#123456", "side": 30.0, "x": 9.0, "y": 9.0}
    data = glyph_render.render_glyph(font, "∀", 48, 48, style)
    assert data == glyph_render.render_glyph(font, "∀", 48, 48, style)
    pixels = np.asarray(Image.open(io.BytesIO(data))).astype(int)
    assert pixels.shape == (48, 48, 3) and pixels[0, 0].min() > 245
    ink = np.argwhere(pixels.sum(-1) < 400)
    assert len(ink) > 50 and ink.min() >= 7 and ink.max() <= 41  # inside the style's box (±JPEG blur)
    with pytest.raises(build2.BuildError, match="draws nothing"):
        glyph_render.render_glyph(font, " ", 48, 48, style)


# ------------------------------------------------------------------------------------------ build
def test_build_loads_with_fusionzoo_is_idempotent_and_reproducible(tmp_path):
    from fusionzoo.datasets import load_dataset

    paths = tarballs(tmp_path / "npm")
    out = tmp_path / "set" / "glami1m"
    console = quiet()
    info = build2.build(out, TINY2, tarballs=paths, check_integrity=False, console=console, progress=False)
    counts = info["counts"]
    assert counts["images"] == 16 and counts["classes"] == 2
    assert info["dropped_symbols"]["emoji"] == 2
    data = load_dataset("glami1m", root=out, data_dir=tmp_path / "data")
    assert sorted(data.classes) == ["arrows", "mathematical-operators"]
    assert len(data.train) + len(data.val) == counts["items_train"] and len(data.test) == counts["items_test"]
    assert not (set(data.train["image_path"]) | set(data.val["image_path"])) & set(data.test["image_path"])
    row = data.test.iloc[0]
    assert row["text"].split()[0] == glyph_source.LOCALES[row["geo"]]  # the text is in the item's language
    sidecar = (out / build2.IMAGES_SIDECAR).read_text().splitlines()
    assert sidecar[0] == "image_id,icon,family,label,tags,author,split,items" and len(sidecar) == 17

    again = build2.build(out, TINY2, tarballs=paths, check_integrity=False, console=console, progress=False)
    assert again["fingerprint"] == info["fingerprint"] and "nothing to do" in console.file.getvalue()
    with pytest.raises(build2.BuildError, match="other parameters"):
        build2.build(out, glyph_select.GlyphParams(**{**TINY2.__dict__, "seed": 1}), tarballs=paths,
                     check_integrity=False, console=console, progress=False)  # fmt: skip
    twin = build2.build(
        tmp_path / "twin", TINY2, tarballs=paths, check_integrity=False, console=console, progress=False
    )
    assert twin["sha256"] == info["sha256"] and twin["images_sha256"] == info["images_sha256"]


def test_build_refuses_tarballs_that_are_not_the_pinned_packages(tmp_path):
    paths = tarballs(tmp_path / "npm")
    with pytest.raises(build2.BuildError, match="differs from the expected"):
        build2.build(tmp_path / "out", TINY2, tarballs=paths, console=quiet(), progress=False)
    assert not (tmp_path / "out").exists()


def _registry(paths, version="0.0.1", flip=None):
    files, pins = {}, {}
    for key, path in paths.items():
        data = path.read_bytes()
        pin = glyph_source.PINS[key]
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        if key == flip:
            data = data[:-1] + bytes([data[-1] ^ 1])
        files[f"/{pin.package}/-/{pin.package}-{version}.tgz"] = data
        files[f"/{pin.package}/{version}"] = json.dumps({"dist": {"integrity": integrity}}).encode()
        pins[key] = glyph_source.NpmPin(pin.package, version, integrity, pin.flag)
    return files, pins


def test_build_fetches_over_https_without_npm_and_checks_every_integrity(tmp_path, monkeypatch):
    import shutil

    paths = tarballs(tmp_path / "npm")
    reference = build2.build(tmp_path / "ref", TINY2, tarballs=paths, check_integrity=False, progress=False,
                             console=quiet())  # fmt: skip
    monkeypatch.setattr(shutil, "which", lambda name: None)  # no npm on this machine
    files, pins = _registry(paths)
    monkeypatch.setattr(build2, "PINS", pins)
    with loopback_registry(files) as (url, requests):
        info = build2.build(tmp_path / "out", TINY2, cache_dir=tmp_path / "cache", registry=url, console=quiet(),
                            progress=False)  # fmt: skip
    assert sorted(requests) == sorted(p for p in files if p.endswith(".tgz"))
    assert info["sha256"] == reference["sha256"] and info["images_sha256"] == reference["images_sha256"]
    assert all(entry["integrity_checked"] for entry in info["source"].values())

    files, pins = _registry(paths, flip="fonts")  # one bit flipped on the way
    monkeypatch.setattr(build2, "PINS", pins)
    with (
        loopback_registry(files) as (url, _),
        pytest.raises(build2.BuildError, match="differs from the expected"),
    ):
        build2.build(tmp_path / "bad", TINY2, cache_dir=tmp_path / "cache2", registry=url, console=quiet())
    assert (
        not (tmp_path / "cache2" / "dejavu-fonts-ttf-0.0.1.tgz").exists() and not (tmp_path / "bad").exists()
    )
