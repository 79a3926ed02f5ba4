"""``fusionzoo tune --workers N``: a worker process that fails is an error of the command, not a line."""

from __future__ import annotations

import os
import subprocess
import sys

from tune_helpers import BROKEN_IN_WORKERS_FACTORY, DATA_FACTORY, TINY_FLAGS, subprocess_env


def test_failed_worker_processes_make_tune_exit_non_zero(tmp_path):
    journal = tmp_path / "optuna.journal"
    script = os.path.join(os.path.dirname(sys.executable), "fusionzoo")
    cmd = [script, "tune", "--fusion", "concat_mlp", "--head", "linear", "--storage", f"journal:{journal}",
           "--study", "j", "--trials", "2", "--workers", "2", "--data-factory", BROKEN_IN_WORKERS_FACTORY,
           "--out", str(tmp_path / "runs"), *TINY_FLAGS]  # fmt: skip
    result = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=240)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "worker(s) 0, 1 exited with an error" in result.stderr
    assert "0 finished trials of 2" in result.stderr and "this worker's data cannot be read" in result.stderr


def test_a_sigkilled_tune_on_sqlite_has_its_trial_retried_at_once_by_the_rerun(tmp_path):
    """The default storage (SQLite, heartbeats every 60 s, grace 120 s): the rerun finds the RUNNING
    trial of the killed process on this host and re-queues it at once (before: it waited for the
    heartbeat to go stale, ~2 minutes)."""
    import signal
    import time

    import optuna
    from optuna.trial import TrialState

    from fusionzoo.tune.storage import resolve_storage

    script = os.path.join(os.path.dirname(sys.executable), "fusionzoo")
    cmd = [script, "tune", "--fusion", "concat_mlp", "--head", "linear", "--study", "s", "--trials", "3",
           "--data-factory", DATA_FACTORY, "--out", str(tmp_path / "runs"), "--pruner", "none", "--quiet",
           "--dim", "16", "--batch-size", "32", "--device", "cpu", "--epochs", "200"]  # fmt: skip
    storage = resolve_storage(None, tmp_path / "runs", heartbeat_interval=None).storage
    victim = subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed, deadline = None, time.monotonic() + 120
    try:
        while killed is None and time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                trials = optuna.load_study(study_name="s", storage=storage).get_trials()
            except KeyError:  # the study does not exist yet
                continue
            mine = [t for t in trials if t.state == TrialState.RUNNING and "config" in t.user_attrs]
            killed = next((t for t in mine if t.user_attrs["worker"].endswith(f":{victim.pid}")), None)
        assert killed is not None, "the tune process never started a trial"
        os.kill(victim.pid, signal.SIGKILL)  # mid-trial (200 epochs): its trial stays RUNNING
    finally:
        victim.kill()
        victim.wait(timeout=30)
    started = time.monotonic()
    rerun = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert time.monotonic() - started < 90  # the stale-heartbeat path alone needs > 120 s
    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert trials[killed.number].state == TrialState.FAIL
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].params == killed.params
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
