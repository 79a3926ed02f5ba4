"""Fetching and checking npm tarballs for the check-set builders: ``npm pack`` (or HTTPS from the
registry without npm), the registry's sha512 integrity (``dist.integrity``), a download that never
keeps a file whose integrity differs. Shared by benchmarks/checkset (``@mdi/svg``) and
benchmarks/checkset2 (CLDR annotations, DejaVu fonts, the emoji list)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from checkset_common import BuildError

NPM_REGISTRY = "https://registry.npmjs.org"
FETCH_MODES = ("auto", "npm", "https")
HTTP_TIMEOUT = 60.0  # seconds without data before a download fails
LOCAL_HINT = "pass a local tarball"  # each builder names its own flag (--mdi-tarball PATH, ...)


def sri_sha512(path: Path) -> str:
    """Subresource-integrity string (``sha512-<base64>``) of a file, as npm reports it."""
    digest = hashlib.sha512()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def tarball_url(package: str, version: str, registry: str = NPM_REGISTRY) -> str:
    """The registry's tarball address, e.g. ``https://registry.npmjs.org/@mdi/svg/-/svg-7.4.47.tgz``."""
    return f"{registry.rstrip('/')}/{package}/-/{package.split('/')[-1]}-{version}.tgz"


def tarball_name(package: str, version: str) -> str:
    """The cached file's name: ``@mdi/svg`` 7.4.47 → ``mdi-svg-7.4.47.tgz``."""
    return f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"


def use_npm(fetch: str) -> bool:
    """``fetch`` is ``auto`` (npm when installed, else HTTPS), ``npm`` or ``https``."""
    if fetch not in FETCH_MODES:
        raise BuildError(f"--fetch must be one of {', '.join(FETCH_MODES)}, got {fetch!r}")
    if fetch == "npm" and shutil.which("npm") is None:
        raise BuildError("--fetch npm: npm is not installed (apt-get install npm), or use --fetch https")
    return fetch == "npm" or (fetch == "auto" and shutil.which("npm") is not None)


def _open(url: str, hint: str = LOCAL_HINT) -> Any:
    """``urllib`` GET with a timeout; network and HTTP errors become :class:`BuildError`."""
    request = urllib.request.Request(url, headers={"User-Agent": "fusionzoo-checkset", "Accept": "*/*"})
    try:
        return urllib.request.urlopen(request, timeout=HTTP_TIMEOUT)
    except urllib.error.HTTPError as exc:
        raise BuildError(f"GET {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BuildError(f"GET {url} failed: {reason} (no network? {hint})") from None


def registry_integrity(
    package: str, version: str, *, fetch: str = "auto", registry: str = NPM_REGISTRY, hint: str = LOCAL_HINT
) -> str:
    """The registry's ``dist.integrity`` of ``<package>@<version>``: ``npm view`` with npm, else the
    version's JSON document from the registry over HTTPS."""
    if not use_npm(fetch):
        url = f"{registry.rstrip('/')}/{package.replace('/', '%2f')}/{version}"
        with _open(url, hint) as response:
            try:
                integrity = json.loads(response.read().decode("utf-8"))["dist"]["integrity"]
            except (ValueError, KeyError, TypeError):
                raise BuildError(f"GET {url}: the answer has no dist.integrity") from None
        return str(integrity)
    npm = shutil.which("npm")
    result = subprocess.run(
        [npm, "view", f"{package}@{version}", "dist.integrity"], capture_output=True, text=True
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise BuildError(f"`npm view {package}@{version} dist.integrity` failed: {result.stderr.strip()}")
    return result.stdout.strip()


def download_tarball(url: str, target: Path, expected: str | None, hint: str = LOCAL_HINT) -> Path:
    """Stream ``url`` into ``target`` (atomically), computing its sha512 on the way; a file whose
    integrity differs from ``expected`` is deleted and never reaches ``target``."""
    digest = hashlib.sha512()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with _open(url, hint) as response, open(tmp, "wb") as handle:
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
    package: str,
    version: str,
    cache_dir: Path,
    console: Any,
    *,
    fetch: str = "auto",
    registry: str = NPM_REGISTRY,
    expected: str | None = None,
    hint: str = LOCAL_HINT,
) -> Path:
    """The tarball in ``cache_dir`` (reused when already there): ``npm pack <package>@<version>``, or,
    without npm (or with ``fetch="https"``), a download from ``registry`` checked against ``expected``."""
    target = cache_dir / tarball_name(package, version)
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    if not use_npm(fetch):
        url = tarball_url(package, version, registry)
        console.print(f"[build] GET {url} → {cache_dir}")
        return download_tarball(url, target, expected, hint)
    npm = shutil.which("npm")
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".npm-pack-") as tmp:
        console.print(f"[build] npm pack {package}@{version} → {cache_dir}")
        result = subprocess.run(
            [npm, "pack", f"{package}@{version}", "--pack-destination", tmp, "--silent"],
            capture_output=True,
            text=True,
        )
        packed = list(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or len(packed) != 1:
            raise BuildError(
                f"`npm pack {package}@{version}` failed (exit {result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip() or 'no output'}; is the registry reachable? "
                f"(--fetch https downloads without npm; or {hint})"
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
