"""The ``submitit`` launcher (SLURM job arrays) with submitit's local executor: every run one job, the
records equal the local launcher's, checkpoints land in the runs directory, a job killed outside its run
is recorded failed and the others go on."""

from __future__ import annotations

import os
import signal
import time

import pytest
from launch_helpers import RecordingDriver, assert_same_records, children_of, tiny_tasks, wait_until

pytest.importorskip("submitit")

from fusionzoo.launch.base import RunTask, execute_run  # noqa: E402
from fusionzoo.launch.submitit import SubmititLauncher  # noqa: E402


def test_local_executor_jobs_equal_the_local_launcher(tmp_path):
    tasks, datas = tiny_tasks(seeds=(0, 1, 2))
    tasks = [RunTask(t.spec, tmp_path / "runs" / "checkpoints" / t.spec.run_id) for t in tasks]
    reference = {t.spec.run_id: execute_run(RunTask(t.spec, None), datas["tiny"]) for t in tasks}
    driver = RecordingDriver()
    SubmititLauncher(cluster="local", poll=0.5).run(tasks, datas.__getitem__, driver)
    assert_same_records(driver.records, reference)
    assert any("3 job(s) on local" in n for n in driver.notes)
    assert (tmp_path / "runs" / "submitit").is_dir()  # logs and pickles beside the results
    for record in driver.records:
        assert (tmp_path / "runs" / "checkpoints" / record.spec.run_id / "model.safetensors").exists()


def test_a_killed_job_is_recorded_failed_and_the_others_finish(tmp_path):
    import threading

    tasks, datas = tiny_tasks(seeds=(0, 1), epochs=30, rows=64)
    launcher = SubmititLauncher(cluster="local", poll=0.5, folder=str(tmp_path / "logs"))
    driver = RecordingDriver()
    killed: list[int] = []

    def kill_seed_0() -> None:  # the process running its job dies (as on a failed node) mid-grid
        if not wait_until(lambda: bool(launcher.submitted), 120):
            return
        controller = int(launcher.submitted[0].job_id)  # the local executor's job id: its controller pid
        if wait_until(lambda: bool(children_of(controller)), 120):  # the task process it started
            time.sleep(1.0)  # inside the run (the task imports torch first)
            for pid in children_of(controller):
                os.kill(pid, signal.SIGKILL)
            killed.append(controller)

    thread = threading.Thread(target=kill_seed_0, daemon=True)
    thread.start()
    launcher.run(tasks, datas.__getitem__, driver)
    thread.join(timeout=5)
    assert killed
    records = {r.spec.seed: r for r in driver.records}
    assert sorted(records) == [0, 1]  # each exactly once
    assert records[0].status == "failed" and f"job {killed[0]}" in records[0].row["error"]
    assert records[1].status == "ok"


def test_tasks_without_a_runs_directory_leave_nothing_in_the_current_directory(tmp_path, monkeypatch):
    """The launcher contract's tasks keep no checkpoint: their logs go to a temporary folder that is removed,
    never to ./runs/submitit (which the test suite used to leave in the repository)."""
    monkeypatch.chdir(tmp_path)
    tasks, datas = tiny_tasks(seeds=(0,))
    driver = RecordingDriver()
    SubmititLauncher(cluster="local", poll=0.5).run(
        [RunTask(t.spec, None) for t in tasks], datas.__getitem__, driver
    )
    assert [r.status for r in driver.records] == ["ok"]
    assert list(tmp_path.iterdir()) == []
    logs = next(n for n in driver.notes if "logs in" in n).split("logs in ")[-1]
    assert "fusionzoo-submitit-" in logs and not os.path.exists(logs)  # a scratch folder, removed afterwards
