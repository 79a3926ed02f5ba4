"""The ``@mdi/svg`` npm tarball: fetch it (``npm pack``, or HTTPS from the registry without npm, see
:mod:`npm_source`), check its sha512 integrity, and read ``package/meta.json`` and
``package/svg/*.svg`` straight from it."""

from __future__ import annotations

import json
import shutil  # noqa: F401 (tests patch mdi_source.shutil.which to play a machine without npm)
import tarfile
from pathlib import Path
from typing import Any

import npm_source
from checkset_common import BuildError
from npm_source import FETCH_MODES, NPM_REGISTRY, sri_sha512, use_npm, verify_tarball

__all__ = [
    "FETCH_MODES", "KNOWN_INTEGRITY", "MDI_PACKAGE", "MDI_VERSION", "NPM_REGISTRY", "default_cache_dir",
    "fetch_tarball", "read_mdi", "registry_integrity", "sri_sha512", "tarball_url", "use_npm", "verify_tarball",
]  # fmt: skip

MDI_PACKAGE = "@mdi/svg"
MDI_VERSION = "7.4.47"
# `npm view @mdi/svg@7.4.47 dist.integrity` (the registry's sha512 of the tarball).
KNOWN_INTEGRITY = {
    "7.4.47": "sha512-WQ2gDll12T9WD34fdRFgQVgO8bag3gavrAgJ0frN4phlwdJARpE6gO1YvLEMJR0KKgoc+/Ea/A0Pp11I00xBvw=="
}


MDI_HINT = "pass --mdi-tarball PATH"


def tarball_url(version: str, registry: str = NPM_REGISTRY) -> str:
    """The registry's address of the ``@mdi/svg`` tarball of ``version``."""
    return npm_source.tarball_url(MDI_PACKAGE, version, registry)


def registry_integrity(version: str, *, fetch: str = "auto", registry: str = NPM_REGISTRY) -> str:
    """The registry's ``dist.integrity`` of ``@mdi/svg@<version>`` (:func:`npm_source.registry_integrity`)."""
    return npm_source.registry_integrity(MDI_PACKAGE, version, fetch=fetch, registry=registry, hint=MDI_HINT)


def fetch_tarball(
    version: str,
    cache_dir: Path,
    console: Any,
    *,
    fetch: str = "auto",
    registry: str = NPM_REGISTRY,
    expected: str | None = None,
) -> Path:
    """``mdi-svg-<version>.tgz`` in ``cache_dir`` (:func:`npm_source.fetch_tarball`)."""
    return npm_source.fetch_tarball(
        MDI_PACKAGE,
        version,
        cache_dir,
        console,
        fetch=fetch,
        registry=registry,
        expected=expected,
        hint=MDI_HINT,
    )


def read_mdi(tarball: Path) -> tuple[list[dict[str, Any]], dict[str, bytes], str]:
    """``(meta entries, svg bytes by icon name, package version)`` read from the npm tarball."""
    svgs: dict[str, bytes] = {}
    meta = None
    version = "unknown"
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                name = member.name
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                if name == "package/meta.json":
                    meta = json.loads(handle.read().decode("utf-8"))
                elif name == "package/package.json":
                    version = str(json.loads(handle.read().decode("utf-8")).get("version", "unknown"))
                elif name.startswith("package/svg/") and name.endswith(".svg"):
                    svgs[name[len("package/svg/") : -len(".svg")]] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BuildError(f"{tarball} is not a readable .tgz: {exc}") from None
    if meta is None:
        raise BuildError(f"{tarball} has no package/meta.json: is it the {MDI_PACKAGE} tarball?")
    if not isinstance(meta, list):
        raise BuildError(f"{tarball}: package/meta.json is not a list of icons")
    return meta, svgs, version


def default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("fusionzoo")) / "checkset"
