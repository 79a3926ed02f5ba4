"""The second check set's three npm packages (pinned, sha512-checked) and what is read from each:

- ``cldr-annotations-full`` (Unicode CLDR): ``package/annotations/<locale>/annotations.json``, a
  symbol's short name (``tts``) and keywords (``default``) per language, for GLAMI's 13 languages;
- ``dejavu-fonts-ttf``: ``package/ttf/<font>.ttf``, the fonts the symbols are drawn with;
- ``unicode-emoji-json``: ``package/data-by-emoji.json`` and ``data-emoji-components.json``, the list
  of emoji, which the set leaves out (emoji are kept for an independent check).
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checkset_common import BuildError


@dataclass(frozen=True)
class NpmPin:
    """A package version and its registry ``dist.integrity`` (``npm view NAME@VERSION dist.integrity``)."""

    package: str
    version: str
    integrity: str
    flag: str  # the builder's option for a local copy


PINS = {
    "cldr": NpmPin(
        "cldr-annotations-full", "48.2.0",
        "sha512-DV7A+rEcgUSNTRsVGNGqBZRmAkGfwhGHO5Q1dRwzBoBnVrHWp804JP7/QJdEc66iHmx3+zLWVIMCFLm0lW7PUQ==",
        "--cldr-tarball",
    ),
    "fonts": NpmPin(
        "dejavu-fonts-ttf", "2.37.3",
        "sha512-f1hd7jJbeQa1VWcw+K2KrTXS50zTMaHpVC4XIKJpNcDeYR5ajMtj/iLlQDYNvLOKamUB3ARVVCf79lNwNVztSQ==",
        "--fonts-tarball",
    ),
    "emoji": NpmPin(
        "unicode-emoji-json", "0.9.0",
        "sha512-HdrQW/7SdbXUsTd8uTATv7LvQJkCSgbAgRCDCtOhQ6xn3EAx+xZHQtRniOXWJK3ywIqPegkNhP4U4EbuFsiQng==",
        "--emoji-tarball",
    ),
}  # fmt: skip
# GLAMI-1M's markets → the CLDR locale of the market's language (cz: Czech, gr: Greek, si: Slovenian, ee: Estonian)
LOCALES = {
    "cz": "cs", "sk": "sk", "ro": "ro", "gr": "el", "si": "sl", "hu": "hu", "hr": "hr",
    "es": "es", "lt": "lt", "lv": "lv", "tr": "tr", "ee": "et", "bg": "bg",
}  # fmt: skip
FONTS = ("DejaVuSans", "DejaVuSans-Bold", "DejaVuSerif", "DejaVuSansMono")
VARIATION_SELECTOR = "\ufe0f"


def _members(tarball: Path, wanted: set[str]) -> tuple[dict[str, bytes], str]:
    """``({member name: bytes} for the members in ``wanted``, the package's version)``."""
    out: dict[str, bytes] = {}
    version = "unknown"
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for member in archive:
                if not member.isfile() or (
                    member.name not in wanted and member.name != "package/package.json"
                ):
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                data = handle.read()
                if member.name == "package/package.json":
                    version = str(json.loads(data.decode("utf-8")).get("version", "unknown"))
                else:
                    out[member.name] = data
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise BuildError(f"{tarball} is not a readable npm .tgz: {exc}") from None
    return out, version


def read_cldr(tarball: Path, locales: dict[str, str] = LOCALES) -> tuple[dict[str, dict[str, Any]], str]:
    """``({geo: {symbol: {"tts": name, "keywords": [...]}}}, version)`` from the CLDR annotations."""
    paths = {f"package/annotations/{locale}/annotations.json": geo for geo, locale in locales.items()}
    files, version = _members(tarball, set(paths))
    missing = sorted(set(paths) - set(files))
    if missing:
        raise BuildError(f"{tarball} lacks {', '.join(missing)}: is it the {PINS['cldr'].package} tarball?")
    out: dict[str, dict[str, Any]] = {}
    for path, geo in paths.items():
        try:
            entries = json.loads(files[path].decode("utf-8"))["annotations"]["annotations"]
        except (ValueError, KeyError, TypeError) as exc:
            raise BuildError(f"{tarball}: {path} is not a CLDR annotations file ({exc!r})") from None
        out[geo] = {
            symbol: {"tts": value["tts"][0], "keywords": [str(k) for k in value.get("default", [])]}
            for symbol, value in entries.items()
            if isinstance(value, dict) and value.get("tts")
        }
    return out, version


def read_emoji(tarball: Path) -> tuple[frozenset[str], str]:
    """Every emoji (and emoji component) in the list, without variation selectors."""
    names = {"package/data-by-emoji.json", "package/data-emoji-components.json"}
    files, version = _members(tarball, names)
    if set(files) != names:
        raise BuildError(
            f"{tarball} lacks {', '.join(sorted(names - set(files)))}: is it {PINS['emoji'].package}?"
        )
    try:
        emoji = list(json.loads(files["package/data-by-emoji.json"]))
        emoji += list(json.loads(files["package/data-emoji-components.json"]).values())
    except (ValueError, AttributeError) as exc:
        raise BuildError(f"{tarball}: unreadable emoji list ({exc!r})") from None
    return frozenset(e.replace(VARIATION_SELECTOR, "") for e in emoji), version


def read_fonts(tarball: Path, fonts: tuple[str, ...] = FONTS) -> tuple[dict[str, bytes], str]:
    """``({font name: TrueType bytes}, version)`` for ``fonts`` (``package/ttf/<name>.ttf``)."""
    paths = {f"package/ttf/{name}.ttf": name for name in fonts}
    files, version = _members(tarball, set(paths))
    missing = sorted(set(paths) - set(files))
    if missing:
        raise BuildError(f"{tarball} lacks {', '.join(missing)}: is it the {PINS['fonts'].package} tarball?")
    return {paths[path]: data for path, data in files.items()}, version
