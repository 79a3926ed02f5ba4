"""Shared file helpers: atomic writes, cross-process locks, a clear message for a full disk.

- :func:`atomic_write`: write through a temporary sibling file, fsync it, ``os.replace`` it into place
  and fsync the directory, so a reader or a process killed at any moment sees the old or the new file,
  never a torn one. :func:`atomic_output` is the same for writers that need a path (``save_model``).
- :func:`atomic_directory`: build a folder in a hidden sibling and rename it into place (the old one is
  moved aside first and removed after); :func:`replace_directory` is that last step for a folder built
  elsewhere (the feature cache's ``<entry>.partial``).
- :func:`file_lock`: an exclusive cross-process lock (``filelock.FileLock``) next to what it guards;
  :func:`wait_for_lock` takes it, saying first that another process holds it.
- :func:`disk_errors`: turns "no space left on device" (and quota) ``OSError`` s into :class:`DiskFullError`
  naming the file, the free space and the fix; finished work stays where it is, so a rerun resumes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import filelock

from fusionzoo.errors import FusionzooError

__all__ = [
    "pid_alive",
    "available_memory",
    "DiskFullError",
    "atomic_directory",
    "atomic_output",
    "atomic_write",
    "check_writable",
    "disk_errors",
    "file_lock",
    "fsync_dir",
    "human_bytes",
    "replace_directory",
    "wait_for_lock",
]

DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def human_bytes(count: float) -> str:
    """``1536`` → ``"1.5 KB"``."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(count) < 1024 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TB"  # pragma: no cover


class DiskFullError(FusionzooError, OSError):
    """The disk (or quota) is full; the message names the file, the free space and what to do."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno 28]" prefix
        return self.strerror or super().__str__()


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so a rename inside it is durable (a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(str(path), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling path to write ``path`` through; on success it is fsynced, renamed
    into place and the directory fsynced; on an exception it is removed and ``path`` is untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with disk_errors(path):
            yield tmp
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], Any] | bytes | str) -> Path:
    """Write ``path`` atomically: ``write`` is bytes/str or a function given the open binary temp file."""
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        if isinstance(write, str):
            handle.write(write.encode("utf-8"))
        elif isinstance(write, bytes):
            handle.write(write)
        else:
            write(handle)
    return Path(path)


def replace_directory(
    source: str | os.PathLike[str], target: str | os.PathLike[str], sync: bool = True
) -> Path:
    """Rename the folder ``source`` to ``target`` (same file system), replacing an existing ``target``.

    ``sync``: flush written data first (``os.sync``), so that after a crash the renamed folder is
    complete; pass ``False`` when every file in it was already fsynced. An existing ``target`` is
    renamed aside before and deleted after, so ``target`` is always either the old or the new folder.
    """
    source, target = Path(source), Path(target)
    if sync:
        os.sync()
    fsync_dir(source)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(source, target)
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike[str], replace: bool = True) -> Iterator[Path]:
    """Yield a hidden temporary sibling folder to build ``target`` in; on success it becomes ``target``.

    ``replace=False`` keeps an existing ``target`` (another process built it first) and discards ours.
    On an exception the temporary folder is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        with disk_errors(target):
            yield tmp
        if replace or not target.exists():
            replace_directory(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def file_lock(path: str | os.PathLike[str], timeout: float = -1) -> filelock.FileLock:
    """An exclusive cross-process lock held on ``path`` (use as a context manager)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return filelock.FileLock(str(path), timeout=timeout)


@contextlib.contextmanager
def wait_for_lock(path: str | os.PathLike[str], on_wait: Callable[[], Any] | None = None) -> Iterator[None]:
    """Hold :func:`file_lock` on ``path``; if another process holds it, call ``on_wait`` (say so), then wait."""
    lock = file_lock(path)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        if on_wait is not None:
            on_wait()
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


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


def available_memory() -> int | None:
    """Bytes of RAM available to this process (and the ones it starts) now: ``MemAvailable`` (Linux),
    capped by a cgroup v2 limit; else free pages (``os.sysconf``); ``None`` when unknown. The one reading
    of free memory: the feature-storage budget and the launchers' job plan both use it."""
    available = None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, AttributeError):
            return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            available = min(available, max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return available


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (``kill(pid, 0)``; another user's counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
