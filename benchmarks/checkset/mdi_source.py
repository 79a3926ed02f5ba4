"""The ``@mdi/svg`` npm tarball: fetch it (``npm pack``, or HTTPS from the registry without npm), check
its sha512 integrity, and read ``package/meta.json`` and ``package/svg/*.svg`` straight from it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from checkset_common import BuildError

MDI_PACKAGE = "@mdi/svg"
MDI_VERSION = "7.4.47"
# `npm view @mdi/svg@7.4.47 dist.integrity` (the registry's sha512 of the tarball).
KNOWN_INTEGRITY = {
    "7.4.47": "sha512-WQ2gDll12T9WD34fdRFgQVgO8bag3gavrAgJ0frN4phlwdJARpE6gO1YvLEMJR0KKgoc+/Ea/A0Pp11I00xBvw=="
}


def sri_sha512(path: Path) -> str:
    """Subresource-integrity string (``sha512-<base64>``) of a file, as npm reports it."""
    digest = hashlib.sha512()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def registry_integrity(version: str) -> str:
    """``npm view @mdi/svg@<version> dist.integrity`` (needs npm and the registry)."""
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError(
            f"npm is not installed, and no pinned integrity is known for {MDI_PACKAGE}@{version}; "
            "install npm (apt-get install npm) or pass --expected-integrity"
        )
    result = subprocess.run(
        [npm, "view", f"{MDI_PACKAGE}@{version}", "dist.integrity"], capture_output=True, text=True
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise BuildError(f"`npm view {MDI_PACKAGE}@{version} dist.integrity` failed: {result.stderr.strip()}")
    return result.stdout.strip()


def fetch_tarball(version: str, cache_dir: Path, console: Any) -> Path:
    """``npm pack @mdi/svg@<version>`` into ``cache_dir`` (reused when already there)."""
    target = cache_dir / f"mdi-svg-{version}.tgz"
    if target.is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError(
            "npm is not installed: install it (apt-get install npm) or download the tarball elsewhere "
            f"(`npm pack {MDI_PACKAGE}@{version}`) and pass --mdi-tarball PATH"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".npm-pack-") as tmp:
        console.print(f"[build] npm pack {MDI_PACKAGE}@{version} → {cache_dir}")
        result = subprocess.run(
            [npm, "pack", f"{MDI_PACKAGE}@{version}", "--pack-destination", tmp, "--silent"],
            capture_output=True,
            text=True,
        )
        packed = list(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or len(packed) != 1:
            raise BuildError(
                f"`npm pack {MDI_PACKAGE}@{version}` failed (exit {result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        os.replace(packed[0], target)
    return target


def verify_tarball(path: Path, expected: str | None) -> str:
    """The tarball's integrity; raises :class:`BuildError` when it differs from ``expected``."""
    actual = sri_sha512(path)
    if expected is not None and actual != expected:
        raise BuildError(
            f"{path}: sha512 integrity {actual} differs from the expected {expected}; the file is not the "
            "published package (delete it to download it again, or pass --expected-integrity skip)"
        )
    return actual


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
