"""Build the *check set*: a small, real image + text classification set in the exact GLAMI-1M layout.

    python benchmarks/checkset/build.py --out /work/data/checkset/glami1m [--seed 0] [--cache-dir DIR]

Source: the npm package ``@mdi/svg`` (Material Design Icons, pinned to 7.4.47, its tarball verified
against the registry's sha512 integrity; fetched with ``npm pack``, or without npm straight from
``https://registry.npmjs.org/@mdi/svg/-/svg-7.4.47.tgz`` with urllib, see ``--fetch``): ``package/meta.json`` (name, aliases, tags, author, ...) and
``package/svg/<name>.svg``. Output (what ``fusionzoo ... --dataset glami1m`` reads)::

    <out>/GLAMI-1M-dataset/GLAMI-1M-train.csv   item_id,image_id,geo,name,description,category,
    <out>/GLAMI-1M-dataset/GLAMI-1M-test.csv      category_name,label_source
    <out>/GLAMI-1M-dataset/images/<image_id>.jpg
    <out>/build-info.json                       parameters, versions, counts, sha256 of the CSVs
    <out>/checkset-images.csv                   per image: icon, family (baseIconId), tags, split

Rules (docs/checkset.md explains each one and gives the measured counts):

- icons: not deprecated, at least one MDI tag, primary tag not in ``EXCLUDED_TAGS`` (``Emoji``: emoji
  sets are kept for an independent check);
- label: the icon's **first** tag (MDI lists the primary category first); ``label_source`` is empty
  (NaN, "rule-based") when the icon has several tags, else ``admin`` for icons by the MDI core authors
  (``CORE_AUTHORS``) and ``custom-tag`` for community contributions;
- text: one *text variant* per icon name or alias, humanised (``lock-open-minus`` → ``Lock open minus``),
  with every word of every MDI tag name removed (``weather``, ``battery``, ``food``, ... and their
  singular/plural), so the label is not in the text verbatim; variants left empty are dropped, and
  icons left with no variant are dropped. ``name`` = one variant, ``description`` = the icon's other
  variants in a seeded order;
- classes: kept when they have at least ``--min-icons`` eligible icons in at least ``--min-families``
  icon families (``baseIconId``: an icon and its outline/variant forms; ``Cloud`` is one family);
  ``--images`` icons are drawn per class in proportion to the class's size (at least
  ``--min-images-per-class``), round-robin over the class's families, so the natural long tail of
  MDI's tags is kept and a class is not the variants of one glyph;
- items share images like GLAMI: each drawn icon is rendered once (one ``image_id``) and gets
  ``1 + Poisson(--items-per-image − 1)`` items (capped at 13 per text variant), one per (text variant,
  geo) pair; geos drawn without replacement per variant with GLAMI-like market weights. The texts are
  English in every geo (no translation offline): ``geo`` is a market tag only;
- split: by MDI icon family (``baseIconId``: an icon and its outline/variant forms), stratified per
  class, so no image — and no near-duplicate variant of an image — is in both train and test;
- render: the SVG path in a seeded dark colour, scaled and shifted by a seeded amount, on white, at
  ``--image-size`` (224×224), via cairosvg, saved as JPEG quality 90.

Modules (all in benchmarks/checkset/; this file is the driver and the command line): ``mdi_source``
(fetch, verify and read the npm tarball), ``icon_select`` (the rules above), ``icon_render`` (SVG →
JPEG), ``glami_layout`` (the CSVs, the sidecar, the counts, the intactness check), ``checkset_common``
(``BuildParams``, ``BuildError``, ``Icon``).

Deterministic for given parameters and tarball; idempotent (an existing build with the same
parameters is kept; different parameters need ``--force``); atomic (built in a sibling temp folder,
then renamed into place).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from builder_cli import run_build, shared_options
from checkset_common import (
    BuildError,
    BuildParams,
    Icon,
    render_style,
    sha256_file,
    split_by_family,
)
from glami_layout import (
    BUILD_INFO,
    DATASET_FOLDER,
    GLAMI_COLUMNS,
    IMAGES_FOLDER,
    IMAGES_SIDECAR,
    TEST_CSV,
    TRAIN_CSV,
    is_intact,
    previous_build,
    publish,
    staging_folder,
    summarise,
    write_glami_csv,
    write_images_sidecar,
)
from icon_render import compose_svg, render_jpeg, versions
from icon_select import choose_icons, eligible_icons, make_items
from mdi_source import (
    KNOWN_INTEGRITY,
    MDI_PACKAGE,
    MDI_VERSION,
    NPM_REGISTRY,
    default_cache_dir,
    fetch_tarball,
    read_mdi,
    registry_integrity,
    sri_sha512,
    verify_tarball,
)

__all__ = [  # the builder's public names (tests and scripts use them through this module)
    "BUILD_INFO", "DATASET_FOLDER", "GLAMI_COLUMNS", "IMAGES_SIDECAR", "KNOWN_INTEGRITY", "MDI_VERSION",
    "BuildError", "BuildParams", "Icon", "build", "compose_svg", "is_intact", "read_mdi", "render_jpeg",
    "render_style", "sri_sha512", "write_glami_csv",
]  # fmt: skip

BUILDER_VERSION = 2  # 2: + checkset-images.csv


# ------------------------------------------------------------------------------------------- build
def params_fingerprint(params: BuildParams, integrity: str) -> str:
    payload = {"builder": BUILDER_VERSION, "params": asdict(params), "mdi_integrity": integrity}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def build(
    out: Path,
    params: BuildParams,
    *,
    tarball: Path | None = None,
    cache_dir: Path | None = None,
    version: str = MDI_VERSION,
    expected_integrity: str | None = "pinned",
    fetch: str = "auto",
    registry: str = NPM_REGISTRY,
    force: bool = False,
    console: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Build (or reuse) the check set at ``out``; returns its build info."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = console or Console(stderr=True)
    params.check()
    started = time.perf_counter()
    out = Path(out).expanduser().resolve()
    if expected_integrity == "pinned":
        expected_integrity = KNOWN_INTEGRITY.get(version) or registry_integrity(
            version, fetch=fetch, registry=registry
        )
    if expected_integrity == "skip":
        expected_integrity = None
    if tarball is None:
        cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        tarball = fetch_tarball(
            version, cache, console, fetch=fetch, registry=registry, expected=expected_integrity
        )
    tarball = Path(tarball).expanduser().resolve()
    if not tarball.is_file():
        raise BuildError(f"--mdi-tarball {tarball} does not exist")
    integrity = verify_tarball(tarball, expected_integrity)
    fingerprint = params_fingerprint(params, integrity)

    previous = previous_build(out, fingerprint, force=force, console=console)
    if previous is not None:
        return previous

    meta, svgs, package_version = read_mdi(tarball)
    icons, dropped = eligible_icons(meta, svgs)
    chosen, available = choose_icons(icons, params)
    test = split_by_family(chosen, params.test_fraction, params.seed)
    images, items = make_items(chosen, test, params)
    console.print(
        f"[build] {MDI_PACKAGE}@{package_version}: {len(meta):,} icons, {len(icons):,} eligible, "
        f"{len(chosen):,} drawn in {len({i.label for i in chosen})} classes → {len(items):,} items"
    )

    with staging_folder(out) as staging:
        dataset = staging / DATASET_FOLDER
        (dataset / IMAGES_FOLDER).mkdir(parents=True)
        columns = [
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        ]
        image_digest = hashlib.sha256()
        with Progress(*columns, console=console, disable=not progress, transient=False) as bar:
            task = bar.add_task("render images", total=len(images))
            for image in sorted(images, key=lambda im: im["image_id"]):
                style = render_style(params.seed, image["image_id"], params)
                data = render_jpeg(
                    image["icon"].svg, params.image_width, params.image_height, style, params.jpeg_quality
                )
                (dataset / IMAGES_FOLDER / f"{image['image_id']}.jpg").write_bytes(data)
                image_digest.update(image["image_id"].encode() + b"\0" + hashlib.sha256(data).digest())
                bar.advance(task)
        for split, name in (("train", TRAIN_CSV), ("test", TEST_CSV)):
            write_glami_csv(dataset / name, (item for item in items if item["split"] == split))
        write_images_sidecar(staging / IMAGES_SIDECAR, images, items)
        info = {
            "what": "fusionzoo check set: Material Design Icons in the GLAMI-1M layout (docs/checkset.md)",
            "builder_version": BUILDER_VERSION,
            "fingerprint": fingerprint,
            "source": {
                "package": MDI_PACKAGE,
                "version": package_version,
                "tarball": tarball.name,
                "integrity": integrity,
                "integrity_checked_against": expected_integrity,
            },
            "params": asdict(params),
            "versions": versions(),
            "dropped_icons": dropped,
            "counts": summarise(images, items, available),
            "sha256": {name: sha256_file(dataset / name) for name in (TRAIN_CSV, TEST_CSV)},
            "images_sha256": image_digest.hexdigest(),
            "bytes": {
                "csv": sum((dataset / n).stat().st_size for n in (TRAIN_CSV, TEST_CSV)),
                "images": sum(p.stat().st_size for p in (dataset / IMAGES_FOLDER).iterdir()),
            },
        }
        info["build_seconds"] = round(time.perf_counter() - started, 2)
        publish(staging, out, info)
    counts = info["counts"]
    console.print(
        f"[build] wrote {out}: {counts['items']:,} items ({counts['items_train']:,} train / "
        f"{counts['items_test']:,} test), {counts['images']:,} images, {counts['classes']} classes, "
        f"{counts['items_per_image']['mean']:.2f} items per image, in {info['build_seconds']:.1f} s"
    )
    return info


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@shared_options(BuildParams.test_fraction)
@click.option(
    "--mdi-tarball",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"A local {MDI_PACKAGE} tarball (default: fetched into --cache-dir, see --fetch).",
)
@click.option("--mdi-version", default=MDI_VERSION, show_default=True)
@click.option(
    "--expected-integrity",
    default="pinned",
    show_default=True,
    help="sha512 SRI the tarball must have: 'pinned' (known for 7.4.47, else npm view), a value, or 'skip'.",
)
@click.option(
    "--min-icons",
    default=BuildParams.min_icons,
    show_default=True,
    type=int,
    help="Keep classes with at least this many eligible icons.",
)
@click.option(
    "--min-families",
    default=BuildParams.min_families,
    show_default=True,
    type=int,
    help="... in at least this many icon families (baseIconId; the test split is by family).",
)
@click.option(
    "--images",
    default=BuildParams.images,
    show_default=True,
    type=int,
    help="Icons (= images) to draw in all.",
)
@click.option("--min-images-per-class", default=BuildParams.min_images_per_class, show_default=True, type=int)
@click.option(
    "--items-per-image",
    default=BuildParams.items_per_image,
    show_default=True,
    type=float,
    help="Mean items per image (1 + Poisson).",
)
def main(
    out: Path,
    seed: int,
    fetch: str,
    npm_registry: str,
    cache_dir: Path | None,
    test_fraction: float,
    image_size: tuple[int, int],
    force: bool,
    no_progress: bool,
    mdi_tarball: Path | None,
    mdi_version: str,
    expected_integrity: str,
    min_icons: int,
    min_families: int,
    images: int,
    min_images_per_class: int,
    items_per_image: float,
) -> None:
    """Build the check set (Material Design Icons in the GLAMI-1M layout); see the module docstring."""
    params = BuildParams(
        seed=seed,
        min_icons=min_icons,
        min_families=min_families,
        images=images,
        min_images_per_class=min_images_per_class,
        items_per_image=items_per_image,
        test_fraction=test_fraction,
        image_width=image_size[0],
        image_height=image_size[1],
    )
    run_build(
        lambda: build(
            out,
            params,
            tarball=mdi_tarball,
            cache_dir=cache_dir,
            version=mdi_version,
            expected_integrity=None if expected_integrity == "skip" else expected_integrity,
            fetch=fetch,
            registry=npm_registry,
            force=force,
            progress=not no_progress,
        ),
        out,
    )


if __name__ == "__main__":
    main()
