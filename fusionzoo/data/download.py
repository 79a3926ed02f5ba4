"""Download GLAMI-1M: stream the official zip, verify it, resume, and extract atomically.

Steps of :func:`download_glami` (each skipped when already done):

1. ``<data dir>/glami1m/GLAMI-1M-dataset`` already extracted (marker file, or CSVs found) → nothing to do.
2. ``<data dir>/downloads/<zip>``: streamed to ``<zip>.part`` with a rich progress bar. An existing
   ``.part`` is resumed with an HTTP ``Range`` request; a connection cut mid-way is retried (resuming)
   up to ``retries`` times, after which the ``.part`` is kept for the next run.
3. The md5 (known for the full zip, see FLUID.md; ``FUSIONZOO_GLAMI_MD5`` / ``--md5`` override it) is
   computed while streaming. On a mismatch the file is renamed ``<zip>.corrupt`` (kept aside, never
   used) and :class:`ChecksumError` is raised.
4. The zip is extracted into a temporary folder next to the target, members checked not to escape it,
   then renamed into place; the zip is deleted unless ``keep_zip``.

URLs: ``FUSIONZOO_GLAMI_URL`` (full zip) / ``FUSIONZOO_GLAMI_TEST_URL`` (test-only zip) or ``url``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from fusionzoo.data.base import DataError
from fusionzoo.data.glami import (
    DATASET_FOLDER,
    EXTRACTED_MARKER,
    OFFICIAL_ZIP_MD5,
    TEST_CSV,
    TRAIN_CSV,
)
from fusionzoo.data.paths import downloads_dir, glami_dir

FULL_ZIP = "GLAMI-1M-dataset.zip"
TEST_ZIP = "GLAMI-1M-dataset--test-only.zip"
HF_BASE = "https://huggingface.co/datasets/glami/glami-1m/resolve/main/"
OFFICIAL_URLS = {False: HF_BASE + FULL_ZIP, True: HF_BASE + TEST_ZIP}
OFFICIAL_MD5 = {FULL_ZIP: OFFICIAL_ZIP_MD5}  # the test-only zip's md5 is not published
URL_ENV = {False: "FUSIONZOO_GLAMI_URL", True: "FUSIONZOO_GLAMI_TEST_URL"}
MD5_ENV = "FUSIONZOO_GLAMI_MD5"
MARKER = EXTRACTED_MARKER
CHUNK = 1 << 20
USER_AGENT = "fusionzoo (+https://github.com/glami/glami-1m dataset download)"


class DownloadError(DataError):
    """The download failed; the message says what to do (rerun resumes from the kept .part file)."""


class ChecksumError(DownloadError):
    """The downloaded file's md5 differs from the expected one; the file was kept aside, not used."""


def glami_url(test_only: bool = False, url: str | None = None) -> str:
    """``url`` if given, else the env override, else the official Hugging Face URL."""
    return url or os.environ.get(URL_ENV[test_only]) or OFFICIAL_URLS[test_only]


def expected_md5(test_only: bool = False, md5: str | None = "auto") -> str | None:
    """``md5="auto"``: ``$FUSIONZOO_GLAMI_MD5`` or the published md5 of the full zip; ``None``/"skip": none."""
    if md5 == "auto":
        md5 = os.environ.get(MD5_ENV) or (None if test_only else OFFICIAL_MD5[FULL_ZIP])
    if md5 is None or md5.lower() in ("", "skip", "none"):
        return None
    if not re.fullmatch(r"[0-9a-fA-F]{32}", md5):
        raise DataError(f"md5 {md5!r} is not 32 hexadecimal digits")
    return md5.lower()


def md5_of(path: Path, hasher: Any = None) -> Any:
    hasher = hasher or hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            hasher.update(block)
    return hasher


def keep_aside(path: Path, suffix: str = ".corrupt") -> Path:
    """Rename ``path`` to ``<path><suffix>`` (numbered if taken) so it is never used again."""
    base = path.with_name(path.name.removesuffix(".part") + suffix)
    target, n = base, 1
    while target.exists():
        target, n = base.with_name(f"{base.name}.{n}"), n + 1
    os.replace(path, target)
    return target


@contextmanager
def _progress(console: Console | None, enabled: bool) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )
    with progress:
        yield progress


def _total_from_content_range(header: str | None) -> int | None:
    match = re.match(r"bytes\s+(?:\d+-\d+|\*)/(\d+)", header or "")
    return int(match.group(1)) if match else None


def download_file(
    url: str,
    dest: Path,
    *,
    md5: str | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    console: Console | None = None,
    progress: bool = True,
    backoff: float = 1.0,
) -> Path:
    """Stream ``url`` to ``dest`` through ``dest.part`` with Range resume, retries and md5 verification."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    sidecar = dest.with_name(dest.name + ".md5")
    if dest.exists():
        if md5 is None:
            return dest
        known = sidecar.read_text().strip() if sidecar.exists() else md5_of(dest).hexdigest()
        if known == md5:
            return dest
        aside = keep_aside(dest)
        raise ChecksumError(
            f"{dest} has md5 {known}, expected {md5}; kept aside as {aside} (not used). Rerun to download it again."
        )
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    hasher = md5_of(part) if offset else hashlib.md5()
    attempt = 0
    with _progress(console, progress) as bars:
        task = bars.add_task(dest.name, total=None, completed=offset)
        while True:
            headers = {"User-Agent": USER_AGENT}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            try:
                with urllib.request.urlopen(
                    urllib.request.Request(url, headers=headers), timeout=timeout
                ) as response:
                    status = response.status
                    total = None
                    if status == 206:
                        total = _total_from_content_range(response.headers.get("Content-Range"))
                        start = re.match(r"bytes\s+(\d+)-", response.headers.get("Content-Range") or "")
                        if start is None or int(start.group(1)) != offset:
                            raise DownloadError(
                                f"{url}: server answered Range {offset}- with {start and start.group(0)}"
                            )
                        mode = "ab"
                    else:  # 200: the server ignored Range (or there was none): start over
                        if offset and console is not None:
                            console.print(f"[yellow]{url} does not support resuming; restarting the download")
                        offset, hasher, mode = 0, hashlib.md5(), "wb"
                        length = response.headers.get("Content-Length")
                        total = int(length) if length and length.isdigit() else None
                    bars.update(task, total=total, completed=offset)
                    with open(part, mode) as handle:
                        while True:
                            block = response.read(CHUNK)
                            if not block:
                                break
                            handle.write(block)
                            hasher.update(block)
                            offset += len(block)
                            bars.update(task, completed=offset)
                if total is not None and offset < total:
                    raise http.client.IncompleteRead(b"", total - offset)
                break
            except urllib.error.HTTPError as exc:
                if exc.code == 416 and offset:
                    total = _total_from_content_range(exc.headers.get("Content-Range"))
                    if total == offset:  # the .part is already complete
                        break
                    offset, hasher = 0, hashlib.md5()
                    part.unlink(missing_ok=True)
                    continue
                if exc.code < 500 or attempt >= retries:
                    raise DownloadError(f"downloading {url} failed: HTTP {exc.code} {exc.reason}") from None
            except (
                urllib.error.URLError,
                http.client.HTTPException,
                ConnectionError,
                TimeoutError,
                OSError,
            ) as exc:
                if attempt >= retries:
                    raise DownloadError(
                        f"downloading {url} was interrupted after {offset} bytes ({type(exc).__name__}: {exc}); "
                        f"the partial file {part} is kept and the next run resumes from it"
                    ) from None
            attempt += 1
            if console is not None:
                console.print(
                    f"[yellow]connection lost at {offset} bytes; resuming (attempt {attempt}/{retries})"
                )
            time.sleep(backoff * attempt)
    digest = hasher.hexdigest()
    if md5 is not None and digest != md5:
        aside = keep_aside(part)
        raise ChecksumError(
            f"{url}: md5 of the download is {digest}, expected {md5}; the file was kept aside as {aside} "
            "and is not used. Rerun to download it again (or pass --md5 if the expected checksum is wrong)."
        )
    os.replace(part, dest)
    sidecar.write_text(digest + "\n")
    return dest


def _safe_members(archive: zipfile.ZipFile, target: Path) -> list[zipfile.ZipInfo]:
    root = os.path.normpath(str(target))
    members = archive.infolist()
    for member in members:
        path = os.path.normpath(os.path.join(root, member.filename))
        if os.path.isabs(member.filename) or not (path == root or path.startswith(root + os.sep)):
            raise DownloadError(
                f"zip member {member.filename!r} would be written outside {target}; refusing to extract"
            )
    return members


def extract_zip(
    zip_path: Path,
    target_parent: Path,
    *,
    marker: dict[str, Any],
    console: Console | None = None,
    progress: bool = True,
) -> Path:
    """Extract ``zip_path`` (members under ``GLAMI-1M-dataset/``) atomically into ``target_parent``."""
    target_parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=target_parent))
    try:
        try:
            archive = zipfile.ZipFile(zip_path)
        except zipfile.BadZipFile as exc:
            aside = keep_aside(zip_path)
            raise DownloadError(f"{zip_path} is not a valid zip ({exc}); kept aside as {aside}") from None
        with archive, _progress(console, progress) as bars:
            members = _safe_members(archive, tmp)
            task = bars.add_task(f"extracting {zip_path.name}", total=sum(m.file_size for m in members))
            for member in members:
                archive.extract(member, tmp)
                bars.advance(task, member.file_size)
        extracted = tmp / DATASET_FOLDER
        if not extracted.is_dir():
            found = ", ".join(sorted(p.name for p in tmp.iterdir())[:5])
            raise DownloadError(f"{zip_path} does not contain a {DATASET_FOLDER}/ folder (found: {found})")
        (extracted / MARKER).write_text(json.dumps(marker, indent=1))
        final = target_parent / DATASET_FOLDER
        old = None
        if final.exists():
            old = target_parent / f".{DATASET_FOLDER}.old-{os.getpid()}"
            os.replace(final, old)
        os.replace(extracted, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def extracted_state(dataset_dir: Path) -> dict[str, Any] | None:
    """The extraction marker, ``{"external": True}`` for a dataset put there by hand, or None."""
    marker = dataset_dir / MARKER
    if marker.is_file():
        try:
            return json.loads(marker.read_text())
        except ValueError:
            return None
    if (dataset_dir / TRAIN_CSV).is_file() and (dataset_dir / TEST_CSV).is_file():
        return {"external": True, "test_only": False}
    return None


def download_glami(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    test_only: bool = False,
    url: str | None = None,
    md5: str | None = "auto",
    keep_zip: bool = False,
    force: bool = False,
    retries: int = 3,
    timeout: float = 60.0,
    console: Console | None = None,
    progress: bool = True,
    backoff: float = 1.0,
) -> Path:
    """Download and extract GLAMI-1M (or its test-only zip) into ``<data dir>/glami1m``; returns its folder."""
    console = console or Console(stderr=True)
    target_parent = glami_dir(data_dir)
    dataset_dir = target_parent / DATASET_FOLDER
    state = extracted_state(dataset_dir)
    if state is not None and not force and (test_only or not state.get("test_only", False)):
        what = "test split" if state.get("test_only") else "dataset"
        console.print(
            f"GLAMI-1M {what} already present at {dataset_dir}; nothing to do (use --force to redo)"
        )
        return dataset_dir
    source = glami_url(test_only, url)
    checksum = expected_md5(test_only, md5)
    name = Path(urllib.parse.urlparse(source).path).name or (TEST_ZIP if test_only else FULL_ZIP)
    dest = downloads_dir(data_dir) / name
    if force:
        dest.unlink(missing_ok=True)
        dest.with_name(dest.name + ".md5").unlink(missing_ok=True)
    console.print(f"downloading {source} → {dest}" + ("" if checksum else " (no md5 known: not verified)"))
    download_file(
        source,
        dest,
        md5=checksum,
        retries=retries,
        timeout=timeout,
        console=console,
        progress=progress,
        backoff=backoff,
    )
    marker = {"url": source, "zip": name, "md5": checksum, "test_only": test_only, "time": time.time()}
    final = extract_zip(dest, target_parent, marker=marker, console=console, progress=progress)
    if not keep_zip:
        dest.unlink(missing_ok=True)
        dest.with_name(dest.name + ".md5").unlink(missing_ok=True)
    console.print(f"GLAMI-1M {'test split' if test_only else 'dataset'} ready at {final}")
    return final
