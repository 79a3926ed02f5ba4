"""Build the *second check set*: Unicode symbols drawn from a font, named in GLAMI-1M's 13 languages,
classified by Unicode block, in the exact GLAMI-1M layout.

    python benchmarks/checkset2/build.py --out /work/data/checkset2/glami1m [--seed 0] [--cache-dir DIR]

Sources (npm, pinned, each tarball's sha512 checked against the registry's ``dist.integrity``; fetched
with ``npm pack``, or without npm over HTTPS from the registry): ``cldr-annotations-full`` (Unicode
CLDR's names and keywords of symbols per language), ``dejavu-fonts-ttf`` (the fonts), and
``unicode-emoji-json`` (the emoji, which are left out). Output (what ``--dataset glami1m`` reads)::

    <out>/GLAMI-1M-dataset/GLAMI-1M-{train,test}.csv   GLAMI-1M's columns
    <out>/GLAMI-1M-dataset/images/<image_id>.jpg
    <out>/build-info.json                              parameters, versions, counts, sha256 of the CSVs
    <out>/checkset-images.csv                          per image: symbol, family, block, split

Rules (docs/checkset.md, "The second check set", gives the measured counts):

- symbols: every CLDR-annotated symbol that is one code point, not an emoji (nor an emoji
  component), not a space or control character, named in all 13 languages and drawn by one of the
  four DejaVu fonts (Sans, Sans Bold, Serif, Sans Mono);
- label: the symbol's **Unicode block** (``Arrows``, ``Mathematical Operators``, ...; fontTools'
  Unicode data); classes: blocks with at least ``--min-chars`` eligible symbols in two families;
- text: in the item's language (``geo`` = the GLAMI market of that language: cz → Czech, gr → Greek,
  ee → Estonian, ...), ``name`` = CLDR's short name, ``description`` = CLDR's keywords (the name
  excluded), comma-separated; unlike the first set the texts are not stripped of class words;
- items share images like GLAMI: one image per symbol, ``min(13, 1 + Poisson(--items-per-image − 1))``
  items, one per language, languages drawn without replacement with GLAMI-like weights;
- split: by family (the Unicode name without direction words: ← → ↑ ↓ are one family), stratified per
  block (:func:`checkset_common.split_by_family`), so no image and no mirror image of a test symbol is
  in train;
- render: the glyph in a seeded font among those that have it, in the seeded dark colour, size and
  offset of :func:`checkset_common.render_style`, on white, ``--image-size`` (224), JPEG quality 90.

Modules: ``glyph_source`` (the pins and the readers), ``glyph_select`` (the rules), ``glyph_render``
(glyph → JPEG); shared with the first builder (benchmarks/checkset): ``npm_source`` (fetch and verify),
``checkset_common`` (markets, ids, the split, the style), ``glami_layout`` (CSVs, sidecar, counts,
idempotent and atomic publication). Deterministic for given parameters and tarballs.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "checkset"))  # the shared modules

import click  # noqa: E402
import npm_source  # noqa: E402
from builder_cli import run_build, shared_options  # noqa: E402
from checkset_common import BuildError, render_style, sha256_file, split_by_family  # noqa: E402
from glami_layout import (  # noqa: E402
    DATASET_FOLDER,
    IMAGES_FOLDER,
    IMAGES_SIDECAR,
    TEST_CSV,
    TRAIN_CSV,
    previous_build,
    publish,
    staging_folder,
    summarise,
    write_glami_csv,
    write_images_sidecar,
)
from glyph_render import choose_font, font_cmap, render_glyph, versions  # noqa: E402
from glyph_select import GlyphParams, choose_classes, eligible_glyphs, make_items  # noqa: E402
from glyph_source import PINS, read_cldr, read_emoji, read_fonts  # noqa: E402

BUILDER_VERSION = 1


def params_fingerprint(params: GlyphParams, integrity: dict[str, str]) -> str:
    payload = {"builder": BUILDER_VERSION, "params": asdict(params), "integrity": integrity}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def sources(
    tarballs: dict[str, Path | None],
    cache_dir: Path | None,
    console: Any,
    *,
    check: bool,
    fetch: str,
    registry: str,
) -> dict[str, tuple[Path, str]]:
    """``{key: (tarball, integrity)}``: a given local tarball, else the pinned version fetched into
    ``cache_dir``; each checked against the pinned integrity unless ``check`` is off."""
    from mdi_source import default_cache_dir

    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    out = {}
    for key, pin in PINS.items():
        expected = pin.integrity if check else None
        path = tarballs.get(key)
        if path is None:
            path = npm_source.fetch_tarball(
                pin.package, pin.version, cache, console, fetch=fetch, registry=registry, expected=expected,
                hint=f"pass {pin.flag} PATH",
            )  # fmt: skip
        path = Path(path).expanduser().resolve()
        if not path.is_file():
            raise BuildError(f"{pin.flag} {path} does not exist")
        out[key] = (path, npm_source.verify_tarball(path, expected))
    return out


def build(
    out: Path,
    params: GlyphParams,
    *,
    tarballs: dict[str, Path | None] | None = None,
    cache_dir: Path | None = None,
    check_integrity: bool = True,
    fetch: str = "auto",
    registry: str = npm_source.NPM_REGISTRY,
    force: bool = False,
    console: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Build (or reuse) the second check set at ``out``; returns its build info."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = console or Console(stderr=True)
    params.check()
    started = time.perf_counter()
    out = Path(out).expanduser().resolve()
    found = sources(tarballs or {}, cache_dir, console, check=check_integrity, fetch=fetch, registry=registry)
    fingerprint = params_fingerprint(params, {key: integrity for key, (_, integrity) in found.items()})
    previous = previous_build(out, fingerprint, force=force, console=console)
    if previous is not None:
        return previous

    cldr, cldr_version = read_cldr(found["cldr"][0])
    emoji, emoji_version = read_emoji(found["emoji"][0])
    fonts, fonts_version = read_fonts(found["fonts"][0])
    glyphs, dropped = eligible_glyphs(cldr, emoji, {name: font_cmap(data) for name, data in fonts.items()})
    chosen, available = choose_classes(glyphs, params.min_chars)
    test = split_by_family(chosen, params.test_fraction, params.seed)
    images, items = make_items(chosen, test, params)
    console.print(
        f"[build] CLDR {cldr_version}: {len(glyphs):,} eligible symbols, {len(chosen):,} in "
        f"{len({g.label for g in chosen})} blocks → {len(items):,} items"
    )
    with staging_folder(out) as staging:
        dataset = staging / DATASET_FOLDER
        (dataset / IMAGES_FOLDER).mkdir(parents=True)
        image_digest = hashlib.sha256()
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=console, disable=not progress) as bar:
            task = bar.add_task("render images", total=len(images))
            for image in sorted(images, key=lambda im: im["image_id"]):
                glyph = image["icon"]
                style = render_style(params.seed, image["image_id"], params)
                font = choose_font(params.seed, image["image_id"], glyph.fonts)
                image["font"] = font
                data = render_glyph(
                    fonts[font],
                    glyph.char,
                    params.image_width,
                    params.image_height,
                    style,
                    params.jpeg_quality,
                )
                (dataset / IMAGES_FOLDER / f"{image['image_id']}.jpg").write_bytes(data)
                image_digest.update(image["image_id"].encode() + b"\0" + hashlib.sha256(data).digest())
                bar.advance(task)
        for split, name in (("train", TRAIN_CSV), ("test", TEST_CSV)):
            write_glami_csv(dataset / name, (item for item in items if item["split"] == split))
        write_images_sidecar(staging / IMAGES_SIDECAR, images, items)
        info = {
            "what": "fusionzoo check set 2: Unicode symbols (CLDR names in 13 languages, DejaVu fonts, "
            "label = Unicode block) in the GLAMI-1M layout (docs/checkset.md)",
            "builder_version": BUILDER_VERSION,
            "fingerprint": fingerprint,
            "source": {
                key: {
                    "package": PINS[key].package,
                    "version": version,
                    "tarball": found[key][0].name,
                    "integrity": found[key][1],
                    "integrity_checked": check_integrity,
                }  # fmt: skip
                for key, version in (
                    ("cldr", cldr_version),
                    ("fonts", fonts_version),
                    ("emoji", emoji_version),
                )
            },
            "params": asdict(params),
            "versions": versions(),
            "dropped_symbols": dropped,
            "fonts_used": dict(sorted(_count(image["font"] for image in images).items())),
            "counts": summarise(images, items, {"symbols_per_block": available}),
            "sha256": {name: sha256_file(dataset / name) for name in (TRAIN_CSV, TEST_CSV)},
            "images_sha256": image_digest.hexdigest(),
        }
        info["build_seconds"] = round(time.perf_counter() - started, 2)
        publish(staging, out, info)
    counts = info["counts"]
    console.print(
        f"[build] wrote {out}: {counts['items']:,} items ({counts['items_train']:,} train / "
        f"{counts['items_test']:,} test), {counts['images']:,} images, {counts['classes']} classes, in "
        f"{info['build_seconds']:.1f} s"
    )
    return info


def _count(values: Any) -> dict[str, int]:
    from collections import Counter

    return dict(Counter(values))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@shared_options(GlyphParams.test_fraction)
@click.option(
    "--cldr-tarball",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A local cldr-annotations-full tarball.",
)
@click.option(
    "--fonts-tarball",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A local dejavu-fonts-ttf tarball.",
)
@click.option(
    "--emoji-tarball",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A local unicode-emoji-json tarball.",
)
@click.option(
    "--expected-integrity",
    type=click.Choice(["pinned", "skip"]),
    default="pinned",
    show_default=True,
    help="Check each tarball against the pinned sha512 (skip: for hand-made tarballs).",
)
@click.option(
    "--min-chars",
    default=GlyphParams.min_chars,
    show_default=True,
    type=int,
    help="Keep Unicode blocks with at least this many eligible symbols.",
)
@click.option(
    "--items-per-image",
    default=GlyphParams.items_per_image,
    show_default=True,
    type=float,
    help="Mean items (languages) per image: min(13, 1 + Poisson(mean - 1)).",
)
def main(out: Path, seed: int, fetch: str, npm_registry: str, cache_dir: Path | None, test_fraction: float,
         image_size: tuple[int, int], force: bool, no_progress: bool, cldr_tarball: Path | None,
         fonts_tarball: Path | None, emoji_tarball: Path | None, expected_integrity: str, min_chars: int,
         items_per_image: float) -> None:  # fmt: skip
    """Build the second check set (Unicode symbols in 13 languages, GLAMI-1M layout); see the module docstring."""
    params = GlyphParams(
        seed=seed, min_chars=min_chars, items_per_image=items_per_image, test_fraction=test_fraction,
        image_width=image_size[0], image_height=image_size[1],
    )  # fmt: skip
    run_build(
        lambda: build(
            out, params, tarballs={"cldr": cldr_tarball, "fonts": fonts_tarball, "emoji": emoji_tarball},
            cache_dir=cache_dir, check_integrity=expected_integrity == "pinned", fetch=fetch,
            registry=npm_registry, force=force, progress=not no_progress,
        ),
        out,
    )  # fmt: skip


if __name__ == "__main__":
    main()
