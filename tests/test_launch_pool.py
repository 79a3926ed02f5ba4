"""The ``pool`` launcher (``--jobs N``): identical numbers to the local launcher, every active run's
progress, a killed worker's run retried (or recorded failed), SIGKILL of the driver mid-grid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from launch_helpers import (
    RecordingDriver,
    alive,
    assert_same_records,
    children_of,
    tiny_bench_args,
    tiny_tasks,
    wait_until,
)

from fusionzoo.launch.base import execute_run
from fusionzoo.launch.pool import PoolLauncher
from fusionzoo.launch.resources import plan_jobs, torch_threads


def _reference(tasks, datas):
    """Each run trained here at the pool's one thread per run: logits (and so continuous metrics such as
    ECE) move in the last bits with the thread count, and other tests may leave this process at another."""
    with torch_threads(1):
        return {t.spec.run_id: execute_run(t, datas[t.spec.dataset]) for t in tasks}


def test_pool_equals_local_bit_for_bit_and_shows_every_active_run():
    tasks, datas = tiny_tasks(seeds=(0, 1, 2))
    driver = RecordingDriver()
    launcher = PoolLauncher(jobs=2)
    launcher.run(tasks, datas.__getitem__, driver)
    assert launcher.plan.jobs == 2 and launcher.plan.threads == 1
    assert_same_records(driver.records, _reference(tasks, datas))
    # every run's progress reached the driver: its start and each of its epochs
    for task in tasks:
        kinds = [e["event"] for e in driver.events[task.spec.run_id]]
        assert kinds[0] == "start" and kinds.count("epoch") == 2
    assert any("2 run(s) at once, 1 thread(s) each" in n for n in driver.notes)


def test_cached_features_reach_the_workers_by_reference(tmp_path):
    """Features from the cache travel as folder names (the workers memory-map the same files)."""
    import numpy as np
    from launch_helpers import cached_feature_data

    from fusionzoo.launch.transport import CacheHandle, ObjectHandle, data_handle, open_data

    data = cached_feature_data(tmp_path)
    handle = data_handle(data)
    assert isinstance(handle, CacheHandle) and set(handle.entries) == {"train", "val", "test"}
    opened = open_data(handle)
    assert open_data(handle) is opened  # once per process
    assert isinstance(opened.train.image_tokens, np.memmap)
    np.testing.assert_array_equal(opened.labels("test"), data.labels("test"))
    np.testing.assert_array_equal(opened.train.image_tokens, data.train.image_tokens)
    moved = data_handle(data, by_reference=False)  # no shared storage: the arrays travel
    assert isinstance(moved, ObjectHandle) and moved.data.train.sources is None


def test_a_killed_worker_is_retried_then_recorded_failed():
    tasks, datas = tiny_tasks(seeds=(0, 1), epochs=30, rows=64)
    reference = _reference(tasks, datas)
    launcher = PoolLauncher(jobs=2, retries=1)
    killed: list[str] = []

    def kill_first_run(task, event):  # SIGKILL the worker training seed 0, once, after its first epoch
        pid = launcher.worker_of(task.spec.run_id)
        if task.spec.seed == 0 and not killed and event["event"] == "epoch" and pid:
            os.kill(pid, signal.SIGKILL)
            killed.append(task.spec.run_id)

    driver = RecordingDriver(on_progress=kill_first_run)
    launcher.run(tasks, datas.__getitem__, driver)
    assert killed
    assert_same_records(driver.records, reference)  # retried once, from scratch: the same numbers
    assert any("worker died" in n for n in driver.notes)

    never = PoolLauncher(jobs=1, retries=0)
    victims: list[int] = []

    def kill_always(task, event):
        pid = never.worker_of(task.spec.run_id)
        if event["event"] == "epoch" and pid and not victims:
            victims.append(pid)
            os.kill(pid, signal.SIGKILL)

    driver = RecordingDriver(on_progress=kill_always)
    never.run(tasks[:2], datas.__getitem__, driver)
    statuses = {r.spec.seed: r.status for r in driver.records}
    assert sorted(statuses) == [0, 1]  # each run recorded exactly once
    failed = [r for r in driver.records if r.status == "failed"]
    assert len(failed) == 1 and "worker process running it died" in failed[0].row["error"]
    assert [r for r in driver.records if r.status == "ok"][0].spec.seed == 1  # the grid went on


def test_plan_keeps_threads_per_run_and_bounds_jobs(monkeypatch):
    monkeypatch.setattr("fusionzoo.launch.resources.usable_cores", lambda: 8)
    monkeypatch.setattr("fusionzoo.launch.resources.busy_cpus", lambda window=0.3: 0.0)  # an idle machine
    monkeypatch.setattr("fusionzoo.launch.resources.visible_gpus", lambda: 0)
    assert plan_jobs(20).jobs == 8 and plan_jobs(20).threads == 1
    assert plan_jobs(3).jobs == 3  # never more workers than runs
    assert plan_jobs(20, threads=2).jobs == 4
    assert plan_jobs(20, jobs=2).threads == 1  # --jobs never changes a run's thread count
    assert "slow each other" in plan_jobs(20, jobs=9).reason
    monkeypatch.setattr("fusionzoo.launch.resources.available_memory", lambda: 4 << 30)
    assert plan_jobs(20, memory_per_run=1 << 30).jobs == 2  # 80% of 4 GiB / (1 GiB + overhead)
    monkeypatch.setattr("fusionzoo.launch.resources.visible_gpus", lambda: 2)
    gpu = plan_jobs(20)
    assert gpu.jobs == 2 and gpu.gpus == [0, 1]
    assert plan_jobs(20, jobs=4).gpus == [0, 1, 0, 1]  # two runs share each GPU
    assert plan_jobs(20, device="cpu").gpus == [None] * 8


# ------------------------------------------------------------------------------------------ CLI


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _rows(out: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(out / "results.parquet")
    except Exception:  # noqa: BLE001 - not written yet
        return pd.DataFrame(columns=["run_id"])


@pytest.mark.slow
def test_jobs_2_equals_jobs_1_and_survives_sigkill_of_the_driver(tmp_path):
    """--jobs 2 gives the --jobs 1 table bit for bit; SIGKILL of the driver mid-grid leaves no orphan
    worker, nothing duplicated, and the rerun trains only the missing runs."""
    data_dir = tmp_path / "data"
    command = [sys.executable, "-m", "fusionzoo"]
    serial = subprocess.run(
        [*command, *tiny_bench_args(data_dir, tmp_path / "j1", "--jobs", "1")],
        capture_output=True, text=True, env=_env(), timeout=600,
    )  # fmt: skip
    assert serial.returncode == 0, serial.stdout + serial.stderr
    out = tmp_path / "j2"
    proc = subprocess.Popen(
        [*command, *tiny_bench_args(data_dir, out, "--jobs", "2")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(),
    )  # fmt: skip
    workers: set[int] = set()

    def one_run_recorded() -> bool:
        workers.update(children_of(proc.pid))
        return len(_rows(out)) >= 1 or proc.poll() is not None

    assert wait_until(one_run_recorded, timeout=300, interval=0.02)
    workers.update(children_of(proc.pid))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    killed = _rows(out)
    assert 1 <= len(killed) < 6 and killed["run_id"].is_unique
    assert len(workers) >= 2, "the grid ran in worker processes"
    assert wait_until(lambda: not any(alive(p) for p in workers), timeout=20), "orphan workers kept running"
    time.sleep(0.5)
    assert len(_rows(out)) == len(killed)  # nothing written after the driver died
    rerun = subprocess.run(
        [*command, *tiny_bench_args(data_dir, out, "--jobs", "2")],
        capture_output=True, text=True, env=_env(), timeout=600,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"6 runs; {len(killed)} finished run(s) reused" in rerun.stdout
    assert f"ran {6 - len(killed)} runs" in rerun.stdout
    final, reference = _rows(out).set_index("run_id"), _rows(tmp_path / "j1").set_index("run_id")
    assert final.index.is_unique and sorted(final.index) == sorted(reference.index)
    metrics = [c for c in reference.columns if c.startswith(("test_", "val_"))]
    pd.testing.assert_frame_equal(final.loc[reference.index, metrics], reference[metrics])
    history = pd.read_parquet(out / "history.parquet")
    assert not history.duplicated(["run_id", "epoch"]).any()
    assert {p.name for p in (out / "checkpoints").iterdir()} == set(final.index)
