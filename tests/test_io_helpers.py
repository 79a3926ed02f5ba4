"""The shared file helpers (atomic writes of files and folders, the waiting lock) and the progress display."""

from __future__ import annotations

import io
import multiprocessing
import time

import pytest
from rich.console import Console

from fusionzoo.io import atomic_directory, atomic_output, atomic_write, replace_directory, wait_for_lock
from fusionzoo.progress import progress_bar, tqdm_for


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "a.json"
    atomic_write(path, "old")

    def broken(handle):
        handle.write(b"half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"
    with atomic_output(tmp_path / "b.bin") as tmp:  # for writers that need a path
        assert tmp.parent == tmp_path and tmp.name.startswith(".b.bin.")
        tmp.write_bytes(b"x")
    assert (tmp_path / "b.bin").read_bytes() == b"x"


def test_atomic_directory_builds_beside_and_replaces_or_keeps(tmp_path):
    target = tmp_path / "models" / "m"
    with atomic_directory(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".m.")
        (tmp / "w").write_text("1")
    assert (target / "w").read_text() == "1"
    with pytest.raises(ValueError), atomic_directory(target) as tmp:
        (tmp / "w").write_text("2")
        raise ValueError("build failed")
    assert (target / "w").read_text() == "1"  # untouched
    with atomic_directory(target, replace=False) as tmp:  # another process finished first: keep theirs
        (tmp / "w").write_text("3")
    assert (target / "w").read_text() == "1"
    with atomic_directory(target) as tmp:
        (tmp / "w").write_text("4")
    assert (target / "w").read_text() == "4"
    assert sorted(p.name for p in target.parent.iterdir()) == ["m"]  # no temporary or old folder left
    built = tmp_path / "elsewhere"
    built.mkdir()
    (built / "f").write_text("5")
    replace_directory(built, target, sync=False)
    assert (target / "f").read_text() == "5" and not (target / "w").exists() and not built.exists()


def _hold(path: str, seconds: float, ready) -> None:
    with wait_for_lock(path):
        ready.set()
        time.sleep(seconds)


def test_wait_for_lock_says_when_it_waits(tmp_path):
    lock = str(tmp_path / "entry.lock")
    said = []
    with wait_for_lock(lock, lambda: said.append("waiting")):
        pass
    assert said == []  # free: no message
    ready = multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold, args=(lock, 1.0, ready))
    holder.start()
    try:
        assert ready.wait(30)
        started = time.perf_counter()
        with wait_for_lock(lock, lambda: said.append("waiting")):
            waited = time.perf_counter() - started
    finally:
        holder.join(30)
    assert said == ["waiting"] and waited > 0.3


def test_progress_columns_quiet_mode_and_tqdm_bridge():
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False)
    with progress_bar(console, unit="runs") as bars:
        task = bars.add_task("grid", total=4)
        bars.advance(task, 2)
        steps = bars.add_task("run", total=10, unit="steps")
        bars.advance(steps, 5)
        bar = tqdm_for(bars)(total=100, initial=10, desc="file.zip", unit="B")
        bar.update(40)
        assert bars.tasks[-1].completed == 50 and bars.tasks[-1].total == 100
        assert bars.tasks[-1].description == "file.zip"
    text = out.getvalue()
    assert "2/4" in text and "runs/s" in text and "steps/s" in text
    with progress_bar(console, enabled=False) as quiet:
        quiet.advance(quiet.add_task("x", total=1), 1)  # works, draws nothing
    assert out.getvalue() == text
    sizes = io.StringIO()
    with progress_bar(Console(file=sizes, width=200), unit="bytes") as bars:
        bars.add_task("download", total=2048, completed=1024)
    assert "1.0/2.0 kB" in sizes.getvalue()
