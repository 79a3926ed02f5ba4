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
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from checkset_common import BuildError

MDI_PACKAGE = "@mdi/svg"
MDI_VERSION = "7.4.47"
NPM_REGISTRY = "https://registry.npmjs.org"
FETCH_MODES = ("auto", "npm", "https")
HTTP_TIMEOUT = 60.0  # seconds without data before a download fails
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


def tarball_url(version: str, registry: str = NPM_REGISTRY) -> str:
    """The registry's tarball address, e.g. ``https://registry.npmjs.org/@mdi/svg/-/svg-7.4.47.tgz``."""
    return f"{registry.rstrip('/')}/{MDI_PACKAGE}/-/{MDI_PACKAGE.split('/')[-1]}-{version}.tgz"


def use_npm(fetch: str) -> bool:
    """``fetch`` is ``auto`` (npm when installed, else HTTPS), ``npm`` or ``https``."""
    if fetch not in FETCH_MODES:
        raise BuildError(f"--fetch must be one of {', '.join(FETCH_MODES)}, got {fetch!r}")
    if fetch == "npm" and shutil.which("npm") is None:
        raise BuildError("--fetch npm: npm is not installed (apt-get install npm), or use --fetch https")
    return fetch == "npm" or (fetch == "auto" and shutil.which("npm") is not None)


def _open(url: str) -> Any:
    """``urllib`` GET with a timeout; network and HTTP errors become :class:`BuildError`."""
    request = urllib.request.Request(url, headers={"User-Agent": "fusionzoo-checkset", "Accept": "*/*"})
    try:
        return urllib.request.urlopen(request, timeout=HTTP_TIMEOUT)
    except urllib.error.HTTPError as exc:
        raise BuildError(f"GET {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BuildError(f"GET {url} failed: {reason} (no network? pass --mdi-tarball PATH)") from None


def registry_integrity(version: str, *, fetch: str = "auto", registry: str = NPM_REGISTRY) -> str:
    """The registry's ``dist.integrity`` of ``@mdi/svg@<version>``: ``npm view`` with npm, else the
    version's JSON document from the registry over HTTPS."""
    if not use_npm(fetch):
        url = f"{registry.rstrip('/')}/{MDI_PACKAGE.replace('/', '%2f')}/{version}"
        with _open(url) as response:
            try:
                integrity = json.loads(response.read().decode("utf-8"))["dist"]["integrity"]
            except (ValueError, KeyError, TypeError):
                raise BuildError(f"GET {url}: the answer has no dist.integrity") from None
        return str(integrity)
    npm = shutil.which("npm")
    result = subprocess.run(
        [npm, "view", f"{MDI_PACKAGE}@{version}", "dist.integrity"], capture_output=True, text=True
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise BuildError(f"`npm view {MDI_PACKAGE}@{version} dist.integrity` failed: {result.stderr.strip()}")
    return result.stdout.strip()


def download_tarball(url: str, target: Path, expected: str | None) -> Path:
    """Stream ``url`` into ``target`` (atomically), computing its sha512 on the way; a file whose
    integrity differs from ``expected`` is deleted and never reaches ``target``."""
    digest = hashlib.sha512()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with _open(url) as response, open(tmp, "wb") as handle:
            for block in iter(lambda: response.read(1 << 16), b""):
                digest.update(block)
                handle.write(block)
        actual = "sha512-" + base64.b64encode(digest.digest()).decode()
        if expected is not None and actual != expected:
            raise BuildError(
                f"GET {url}: sha512 integrity {actual} differs from the expected {expected}; "
                "the download is not the published package (nothing was kept)"
            )
        os.replace(tmp, target)
    except OSError as exc:
        raise BuildError(f"GET {url} into {target} failed: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def fetch_tarball(
    version: str,
    cache_dir: Path,
    console: Any,
    *,
    fetch: str = "auto",
    registry: str = NPM_REGISTRY,
    expected: str | None = None,
) -> Path:
    """The tarball in ``cache_dir`` (reused when already there): ``npm pack @mdi/svg@<version>``, or,
    without npm (or with ``fetch="https"``), a download from ``registry`` checked against ``expected``."""
    target = cache_dir / f"mdi-svg-{version}.tgz"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    if not use_npm(fetch):
        url = tarball_url(version, registry)
        console.print(f"[build] GET {url} → {cache_dir}")
        return download_tarball(url, target, expected)
    npm = shutil.which("npm")
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
                f"{result.stderr.strip() or result.stdout.strip() or 'no output'}; is the registry reachable? "
                "(--fetch https downloads without npm; --mdi-tarball PATH uses a local file)"
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
