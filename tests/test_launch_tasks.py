"""Tasks and launchers: a launcher schedules any task (it knows no kind); the ``[run]`` settings; the
``--jobs auto`` rule (free CPU, cgroup quota, a busy machine backs off to one job); the warm pool."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from launch_helpers import EchoTask, RecordingDriver

import fusionzoo
from fusionzoo.launch.base import Task
from fusionzoo.launch.resources import cpu_quota, free_slots, plan_jobs
from fusionzoo.run_settings import RunSettings, parse_jobs, run_settings

TASK_MEMBERS = ("key", "label", "input", "checkpoint_dir", "whole_gpu", "execute", "failed", "discard",
                "absolute", "with_checkpoint")  # fmt: skip
LAUNCH = Path(fusionzoo.__file__).parent / "launch"


# ----------------------------------------------------------------------------------- no task kinds
def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("module", ["base", "local", "pool", "ray", "submitit", "select"])
def test_launchers_import_no_task_kind(module):
    """A launcher knows no task kind: it never imports training, evaluation, baselines, tune or encode."""
    imported = _imported_modules(LAUNCH / f"{module}.py")
    kinds = ("fusionzoo.train", "fusionzoo.evaluation", "fusionzoo.baselines", "fusionzoo.tune",
             "fusionzoo.encoders", "fusionzoo.bench", "fusionzoo.experiment")  # fmt: skip
    data = ("fusionzoo.train.inputs",)  # the features container (memory sizing, transport), not a task kind
    assert not [m for m in imported if m.startswith(kinds) and not m.startswith(data)], imported
    source = (LAUNCH / f"{module}.py").read_text()
    assert "spec.kind" not in source and '"eval"' not in source and '"probe"' not in source


def test_every_kind_of_task_has_the_task_methods():
    from fusionzoo.encoders.sharded import ShardJob, ShardTask
    from fusionzoo.launch.base import RunTask
    from fusionzoo.tune.worker import TuneWorkerTask

    job = ShardJob("train", "text", 0, 8, "/tmp/shard", "k", {}, 8, 8, texts=["a"] * 8)
    spec = SimpleNamespace(run_id="r", label="a run", dataset="synth", config=None)
    tune = TuneWorkerTask(SimpleNamespace(worker_index=0))
    tasks = [RunTask(spec, None), tune, ShardTask(job, "encoders"), EchoTask(1)]
    missing = [(type(t).__name__, n) for t in tasks for n in TASK_MEMBERS if not hasattr(t, n)]
    assert not missing and all(isinstance(task, Task) for task in tasks)
    assert len({t.key for t in tasks}) == 4 and ShardTask(job, "encoders").checkpoint_dir == Path(
        "/tmp/shard"
    )


@pytest.mark.parametrize("launcher", ["local", "pool"])
def test_a_launcher_runs_a_task_kind_it_has_never_seen(launcher):
    from fusionzoo import registry

    tasks = [EchoTask(v) for v in (1, 2, 3)] + [EchoTask(10, input=None)]
    driver = RecordingDriver()
    kwargs = {"jobs": 2} if launcher == "pool" else {}
    registry.create("launcher", launcher, **kwargs).run(tasks, {"factor": 7}.__getitem__, driver)
    assert sorted((r.key, r.value) for r in driver.records) == [
        ("echo-1", 7), ("echo-10", 10), ("echo-2", 14), ("echo-3", 21)
    ]  # fmt: skip
    assert set(driver.events) == {t.key for t in tasks}  # progress of every task reached the driver
    if launcher == "local":
        assert {r.pid for r in driver.records} == {os.getpid()}
    else:
        assert os.getpid() not in {r.pid for r in driver.records}


def test_the_pool_workers_start_once_and_serve_the_next_launch():
    from fusionzoo.launch.pool import PoolLauncher

    first, second = RecordingDriver(), RecordingDriver()
    PoolLauncher(jobs=2).run([EchoTask(v, sleep=0.2) for v in range(4)], {"factor": 1}.__getitem__, first)
    PoolLauncher(jobs=2).run([EchoTask(v, sleep=0.2) for v in range(4)], {"factor": 2}.__getitem__, second)
    pids = {r.pid for r in first.records}
    assert len(pids) == 2 and {r.pid for r in second.records} == pids  # the same two warm workers
    assert sorted(r.value for r in second.records) == [0, 2, 4, 6]  # a new input reached them


# ----------------------------------------------------------------------------------- [run] settings
def test_run_settings_validate_and_read_the_older_bench_keys():
    assert RunSettings().jobs == "auto" and RunSettings().fixed_jobs is None
    assert RunSettings(jobs="3").fixed_jobs == 3 and RunSettings(jobs=" AUTO ").jobs == "auto"
    for bad in (0, -1, "many", True, 1.5):
        with pytest.raises(ValueError, match="jobs"):
            RunSettings(jobs=bad)
    with pytest.raises(ValueError, match="extra|not permitted"):
        RunSettings(workers=2)
    assert parse_jobs("auto") == "auto" and parse_jobs(4) == 4

    from fusionzoo.config import ExperimentConfig

    config = ExperimentConfig.model_validate(
        {"bench": {"launcher": "ray", "jobs": 3, "threads": 2, "ray_address": "auto"}}
    )
    run = run_settings(config)
    assert (run.launcher, run.jobs, run.threads, run.ray_address) == ("ray", 3, 2, "auto")
    tune = ExperimentConfig.model_validate({"tune": {"workers": 2}})
    assert run_settings(tune).jobs == 2  # [tune] workers: tasks at once of fusionzoo tune
    assert run_settings(ExperimentConfig.model_validate({"bench": {"jobs": "auto"}})).jobs == "auto"


# ----------------------------------------------------------------------------------- --jobs auto
def test_auto_backs_off_on_a_busy_machine(monkeypatch):
    monkeypatch.setattr("fusionzoo.launch.resources.usable_cores", lambda: 2)
    monkeypatch.setattr("fusionzoo.launch.resources.visible_gpus", lambda: 0)
    assert plan_jobs(8, busy=0.0).jobs == 2  # idle: both cores
    assert plan_jobs(8, busy=0.3).jobs == 2  # a little background work does not take a core
    busy = plan_jobs(8, busy=1.0)  # one other process keeps a core busy: one job
    assert busy.jobs == 1 and "busy with other processes" in busy.reason
    assert plan_jobs(8, busy=5.0).jobs == 1  # never fewer than one
    assert plan_jobs(8, jobs=2, busy=5.0).jobs == 2  # --jobs N is the user's word
    assert plan_jobs(1, busy=0.0).jobs == 1  # never more jobs than tasks
    assert free_slots(16, 3.6, 4) == 3 and free_slots(4, 0.0, 8) == 1


def test_auto_with_one_busy_core_runs_in_this_process(monkeypatch):
    from fusionzoo.launch.local import LocalLauncher
    from fusionzoo.launch.pool import PoolLauncher
    from fusionzoo.launch.select import launcher_for

    monkeypatch.setattr("fusionzoo.launch.resources.usable_cores", lambda: 2)
    monkeypatch.setattr("fusionzoo.launch.resources.visible_gpus", lambda: 0)
    monkeypatch.setattr("fusionzoo.launch.resources.busy_cpus", lambda window=0.3: 1.0)
    assert isinstance(launcher_for(RunSettings(), 8), LocalLauncher)
    monkeypatch.setattr("fusionzoo.launch.resources.busy_cpus", lambda window=0.3: 0.0)
    assert isinstance(launcher_for(RunSettings(), 8), PoolLauncher)
    assert isinstance(launcher_for(RunSettings(), 1), LocalLauncher)  # one task: no pool to start
    assert isinstance(launcher_for(RunSettings(jobs=1), 8), LocalLauncher)


def test_cgroup_quota_caps_the_usable_cores(tmp_path, monkeypatch):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cpu_quota(str(tmp_path)) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(str(tmp_path)) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cpu_quota(str(tmp_path)) == 2.0

    from fusionzoo.launch import resources

    monkeypatch.setattr(resources, "cpu_quota", lambda: 1.5)
    assert resources.usable_cores() == min(2, len(os.sched_getaffinity(0)))


def test_cpu_monitor_counts_other_processes_only(monkeypatch):
    """Other processes' CPUs = (machine busy − this process tree's) / elapsed × CPUs."""
    from fusionzoo.launch import resources

    machine = iter([(1000, 4000), (1000 + 300, 4000 + 400)])  # 400 jiffies elapsed on 4 CPUs, 300 busy
    own = iter([50, 50 + 100])  # of which 100 were this process and its workers
    monkeypatch.setattr(resources, "_machine_jiffies", lambda: next(machine))
    monkeypatch.setattr(resources, "_own_jiffies", lambda: next(own))
    monkeypatch.setattr(resources.os, "cpu_count", lambda: 4)
    monitor = resources.CpuMonitor()
    assert monitor.sample() == pytest.approx(2.0)  # (300 - 100) / 400 × 4


def test_own_jiffies_include_the_children():
    """The warm pool's workers are this process's children: their CPU is ours, not another's."""
    import subprocess
    import sys
    import time

    from fusionzoo.launch.resources import _own_jiffies

    before = _own_jiffies()
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        deadline = time.monotonic() + 30
        while _own_jiffies() - before < 50 and time.monotonic() < deadline:  # 0.5 s of CPU
            time.sleep(0.2)
        assert _own_jiffies() - before >= 50
    finally:
        child.kill()
        child.wait()


# ----------------------------------------------------------------------------------- --jobs on the CLI
@pytest.mark.parametrize("command", ["bench", "encode", "tune"])
@pytest.mark.parametrize("value", ["0", "many", "-2"])
def test_a_bad_jobs_value_is_a_usage_error_naming_the_flag(command, value):
    from click.testing import CliRunner

    from fusionzoo.cli import main

    extra = ["--fusion", "film"] if command == "tune" else []
    result = CliRunner().invoke(main, [command, *extra, "--jobs", value])
    assert result.exit_code == 2, result.output
    assert "--jobs" in result.output and "expected a whole number >= 1 or 'auto'" in result.output


def test_jobs_auto_reaches_the_run_settings(tmp_path):
    from click.testing import CliRunner

    from fusionzoo.cli.bench import bench

    result = CliRunner().invoke(
        bench, ["--out", str(tmp_path / "runs"), "--dry-run", "--jobs", "auto", "--fusions", "film"]
    )
    assert result.exit_code == 0, result.output
    preset = tmp_path / "p.toml"
    preset.write_text('[bench]\njobs = "auto"\nfusions = ["film"]\n')
    result = CliRunner().invoke(bench, ["--config", str(preset), "--out", str(tmp_path / "r2"), "--dry-run"])
    assert result.exit_code == 0, result.output
