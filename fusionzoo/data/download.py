"""Download GLAMI-1M: fetch the official zip from the Hugging Face Hub (or a mirror URL), verify its
md5, extract it atomically.

Steps of :func:`download_glami` (each skipped when already done):

1. ``<data dir>/glami1m/GLAMI-1M-dataset`` already extracted (marker file, or CSVs found) → nothing to do.
2. The zip lands in ``<data dir>/downloads/``:

   - from the Hub (the default): ``huggingface_hub.hf_hub_download(repo_id="glami/glami-1m",
     repo_type="dataset", local_dir=<downloads>)``, which brings the Hub client's retries (a dropped
     connection is resumed with an HTTP ``Range`` request within the run), its file lock, the ETag /
     commit check that skips a file already downloaded, ``HF_ENDPOINT`` and offline mode
     (``HF_HUB_OFFLINE=1``: only a file already there is used);
   - from a plain URL (``--url`` or ``FUSIONZOO_GLAMI_URL``, e.g. a mirror): streamed into
     ``<zip>.part`` by ``huggingface_hub.file_download.http_get``; an existing ``.part`` is resumed
     with a ``Range`` request (also across runs), a server that ignores ``Range`` restarts cleanly,
     and a connection that stays down is retried ``retries`` times before the ``.part`` is kept for
     the next run.
3. The md5 (known for the full zip, see FLUID.md; ``FUSIONZOO_GLAMI_MD5`` / ``--md5`` override it) is
   checked. On a mismatch the file is renamed ``<zip>.corrupt`` (kept aside, never used) and
   :class:`ChecksumError` is raised.
4. The zip is extracted into a hidden folder next to the target, members checked not to escape it,
   then renamed into place (:func:`fusionzoo.io.replace_directory`); the zip is deleted unless
   ``keep_zip``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import urllib.parse
import zipfile
from pathlib import Path
from typing import Any

from rich.console import Console

from fusionzoo.data.base import DataError
from fusionzoo.data.glami import DATASET_FOLDER, EXTRACTED_MARKER, OFFICIAL_ZIP_MD5, TEST_CSV, TRAIN_CSV
from fusionzoo.data.paths import downloads_dir, glami_dir
from fusionzoo.io import atomic_write, fsync_dir, replace_directory
from fusionzoo.progress import progress_bar, tqdm_for

FULL_ZIP = "GLAMI-1M-dataset.zip"
TEST_ZIP = "GLAMI-1M-dataset--test-only.zip"
HUB_REPO = "glami/glami-1m"
HF_BASE = f"https://huggingface.co/datasets/{HUB_REPO}/resolve/main/"
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


def verify_md5(path: Path, md5: str | None, source: str) -> Path:
    """Check ``path`` against ``md5`` (a ``<path>.md5`` sidecar remembers a verified file); a mismatch
    keeps the file aside as ``.corrupt`` and raises :class:`ChecksumError`."""
    sidecar = path.with_name(path.name + ".md5")
    if md5 is None:
        return path
    known = sidecar.read_text().strip() if sidecar.exists() else md5_of(path).hexdigest()
    if known == md5:
        atomic_write(sidecar, known + "\n")
        return path
    sidecar.unlink(missing_ok=True)
    aside = keep_aside(path)
    raise ChecksumError(
        f"{source}: md5 of the download is {known}, expected {md5}; the file was kept aside as {aside} "
        "and is not used. Rerun to download it again (or pass --md5 if the expected checksum is wrong)."
    )


def _http_errors() -> tuple[type[BaseException], ...]:
    import httpx2

    return (httpx2.HTTPError, OSError)


def _offline(exc: BaseException) -> bool:
    from huggingface_hub.errors import OfflineModeIsEnabled

    return isinstance(exc, OfflineModeIsEnabled)


OFFLINE_ADVICE = (
    "HF_HUB_OFFLINE is set, so huggingface_hub (which fetches the Hub and --url alike) makes no HTTP "
    "request; run the download with HF_HUB_OFFLINE unset"
)


def download_file(
    url: str,
    dest: Path,
    *,
    md5: str | None = None,
    retries: int = 3,
    console: Console | None = None,
    progress: bool = True,
    backoff: float = 1.0,
) -> Path:
    """Fetch a plain ``url`` into ``dest`` through ``dest.part`` (``huggingface_hub``'s ``http_get``:
    Range resume, retries), then verify the md5."""
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.file_download import http_get

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        return verify_md5(dest, md5, str(dest))
    part = dest.with_name(dest.name + ".part")
    with progress_bar(console, enabled=progress, unit="bytes") as bars:
        for attempt in range(retries + 1):
            offset = part.stat().st_size if part.exists() else 0
            try:
                with open(part, "ab") as handle:
                    http_get(
                        url, handle, resume_size=offset, headers={"User-Agent": USER_AGENT},
                        displayed_filename=dest.name, tqdm_class=tqdm_for(bars),
                    )  # fmt: skip
                    handle.flush()
                    os.fsync(handle.fileno())  # on disk before it is renamed into place
                break
            except HfHubHTTPError as exc:
                status = exc.response.status_code
                total = re.match(r"bytes\s+\*/(\d+)", exc.response.headers.get("Content-Range", ""))
                if status == 416 and offset and total and int(total.group(1)) == offset:
                    break  # the .part is already complete
                if status == 416:
                    part.unlink(missing_ok=True)
                elif status < 500 or attempt >= retries:
                    raise DownloadError(
                        f"downloading {url} failed: HTTP {status} {exc.response.reason_phrase}"
                    ) from None
            except _http_errors() as exc:
                if _offline(exc):
                    raise DownloadError(f"cannot download {url}: {OFFLINE_ADVICE}") from None
                size = part.stat().st_size if part.exists() else 0
                if attempt >= retries:
                    raise DownloadError(
                        f"downloading {url} was interrupted after {size} bytes ({type(exc).__name__}: {exc}); "
                        f"the partial file {part} is kept and the next run resumes from it"
                    ) from None
            if console is not None:
                console.print(f"[yellow]connection lost; resuming (attempt {attempt + 1}/{retries})")
            time.sleep(backoff * (attempt + 1))
    os.replace(part, dest)
    fsync_dir(dest.parent)
    return verify_md5(dest, md5, url)


def download_from_hub(
    filename: str,
    folder: Path,
    *,
    md5: str | None,
    force: bool = False,
    endpoint: str | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> Path:
    """``hf_hub_download`` of ``filename`` from the ``glami/glami-1m`` dataset into ``folder``, then the md5."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        with progress_bar(console, enabled=progress, unit="bytes") as bars:
            path = hf_hub_download(
                HUB_REPO, filename, repo_type="dataset", local_dir=folder, force_download=force,
                endpoint=endpoint, tqdm_class=tqdm_for(bars), headers={"User-Agent": USER_AGENT},
            )  # fmt: skip
    except LocalEntryNotFoundError as exc:
        from huggingface_hub import constants

        why = OFFLINE_ADVICE if constants.is_offline_mode() else f"{exc}".splitlines()[0]
        raise DownloadError(
            f"{HUB_REPO}/{filename} could not be fetched from the Hugging Face Hub and is not in {folder} "
            f"({why}). Check the connection (and that HF_ENDPOINT, if set, points to a Hub), or download the "
            "zip elsewhere and pass --url (a mirror) or put it in that folder"
        ) from None
    except HfHubHTTPError as exc:
        raise DownloadError(f"downloading {HUB_REPO}/{filename} failed: {exc}".splitlines()[0]) from None
    except _http_errors() as exc:
        raise DownloadError(
            f"downloading {HUB_REPO}/{filename} was interrupted ({type(exc).__name__}: {exc}); rerun to try again"
        ) from None
    return verify_md5(Path(path), md5, f"{HUB_REPO}/{filename}")


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
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=target_parent) as staging:
        tmp = Path(staging)
        try:
            archive = zipfile.ZipFile(zip_path)
        except zipfile.BadZipFile as exc:
            aside = keep_aside(zip_path)
            raise DownloadError(f"{zip_path} is not a valid zip ({exc}); kept aside as {aside}") from None
        with archive, progress_bar(console, enabled=progress, unit="bytes") as bars:
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
        return replace_directory(extracted, target_parent / DATASET_FOLDER)


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
    endpoint: str | None = None,
    console: Console | None = None,
    progress: bool = True,
    backoff: float = 1.0,
) -> Path:
    """Download and extract GLAMI-1M (or its test-only zip) into ``<data dir>/glami1m``; returns its folder.

    ``url`` (or ``$FUSIONZOO_GLAMI_URL``) fetches a plain URL instead of the Hub; ``endpoint`` (or
    ``$HF_ENDPOINT``) is the Hub to ask."""
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
    plain = url or os.environ.get(URL_ENV[test_only])
    checksum = expected_md5(test_only, md5)
    name = Path(urllib.parse.urlparse(plain).path).name if plain else ""
    name = name or (TEST_ZIP if test_only else FULL_ZIP)
    folder = downloads_dir(data_dir)
    dest = folder / name
    if force:
        dest.unlink(missing_ok=True)
        dest.with_name(dest.name + ".md5").unlink(missing_ok=True)
    source = plain or glami_url(test_only)
    console.print(f"downloading {source} → {dest}" + ("" if checksum else " (no md5 known: not verified)"))
    common = dict(md5=checksum, console=console, progress=progress)
    if plain:
        dest = download_file(plain, dest, retries=retries, backoff=backoff, **common)
    else:
        dest = download_from_hub(name, folder, force=force, endpoint=endpoint, **common)
    marker = {"url": source, "zip": name, "md5": checksum, "test_only": test_only, "time": time.time()}
    final = extract_zip(dest, target_parent, marker=marker, console=console, progress=progress)
    if not keep_zip:
        dest.unlink(missing_ok=True)
        dest.with_name(dest.name + ".md5").unlink(missing_ok=True)
        if not plain:  # the Hub client's record of the file just deleted
            (folder / ".cache" / "huggingface" / "download" / f"{name}.metadata").unlink(missing_ok=True)
    console.print(f"GLAMI-1M {'test split' if test_only else 'dataset'} ready at {final}")
    return final
