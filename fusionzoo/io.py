"""Shared file helpers: atomic writes, cross-process locks, a clear message for a full disk.

- :func:`atomic_write`: write through a temporary sibling file, fsync it, ``os.replace`` it into place
  and fsync the directory, so a reader or a process killed at any moment sees the old or the new file,
  never a torn one.
- :func:`file_lock`: an exclusive cross-process lock (``filelock.FileLock``) next to what it guards.
- :func:`disk_errors`: turns "no space left on device" (and quota) ``OSError`` s into :class:`DiskFullError`
  naming the file, the free space and the fix; finished work stays where it is, so a rerun resumes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import filelock

__all__ = [
    "DiskFullError",
    "atomic_write",
    "check_writable",
    "disk_errors",
    "file_lock",
    "fsync_dir",
    "human_bytes",
]

DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def human_bytes(count: float) -> str:
    """``1536`` → ``"1.5 KB"``."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(count) < 1024 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TB"  # pragma: no cover


class DiskFullError(OSError):
    """The disk (or quota) is full; the message names the file, the free space and what to do."""


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so a rename inside it is durable (a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(str(path), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], Any] | bytes | str) -> Path:
    """Write ``path`` atomically: ``write`` is bytes/str or a function given the open binary temp file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with disk_errors(path), open(tmp, "wb") as handle:
            if isinstance(write, str):
                handle.write(write.encode("utf-8"))
            elif isinstance(write, bytes):
                handle.write(write)
            else:
                write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def file_lock(path: str | os.PathLike[str], timeout: float = -1) -> filelock.FileLock:
    """An exclusive cross-process lock held on ``path`` (use as a context manager)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return filelock.FileLock(str(path), timeout=timeout)


def _free(path: Path) -> str:
    probe = path if path.exists() else path.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return human_bytes(shutil.disk_usage(probe).free)
    except OSError:  # pragma: no cover
        return "unknown"


@contextlib.contextmanager
def disk_errors(path: str | os.PathLike[str], what: str = "") -> Iterator[None]:
    """Re-raise a full-disk ``OSError`` inside the block as :class:`DiskFullError` with a clear message."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as exc:
        if exc.errno not in DISK_FULL_ERRNOS:
            raise
        path = Path(path)
        raise DiskFullError(
            exc.errno,
            f"disk full while writing {what + ' ' if what else ''}{path} ({_free(path)} free): free some space "
            "(or point --out / --data-dir elsewhere) and rerun the same command; finished work is kept and "
            "only what is missing is redone",
        ) from None


def check_writable(directory: str | os.PathLike[str], need_bytes: int = 0, what: str = "directory") -> None:
    """Raise ``OSError`` with a clear message unless ``directory`` can be created and written and has
    ``need_bytes`` free."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise OSError(exc.errno, f"the {what} {directory} is not writable ({exc.strerror or exc})") from None
    free = shutil.disk_usage(directory).free
    if need_bytes and free < need_bytes:
        raise DiskFullError(
            errno.ENOSPC,
            f"the {what} {directory} has {human_bytes(free)} free, about {human_bytes(need_bytes)} is needed; "
            "free some space or choose another location",
        )
