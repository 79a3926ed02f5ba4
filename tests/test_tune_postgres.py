"""Several tuning workers on one study in a REAL PostgreSQL server (started here with initdb/pg_ctl).

The server runs on 127.0.0.1 and a free port, as an unprivileged user, in a temp dir, for the whole
session. The tests skip only when the PostgreSQL server binaries are not installed (.ci/run installs
Debian's ``postgresql`` package).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState
from pg_server import find_bin_dir, postgres_server
from tune_helpers import BARRIER_ENV, DATA_FACTORY, SYNCED_DATA_FACTORY, subprocess_env

from fusionzoo.tune.budget import STATUS_ATTR, budget_counts
from fusionzoo.tune.storage import mask_url, resolve_storage

pytestmark = pytest.mark.postgres

HEARTBEAT = ["--heartbeat-interval", "1", "--grace-period", "3"]


@pytest.fixture(scope="session")
def postgres():
    if find_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    with postgres_server() as server:
        yield server


def _worker(
    url: str, study: str, trials: int, tmp_path, *extra: str, factory: str = DATA_FACTORY
) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "fusionzoo.cli", "tune", "--fusion", "concat_mlp", "--head", "linear",
        "--storage", url, "--study", study, "--trials", str(trials), "--quiet",
        "--data-factory", factory, "--out", str(tmp_path / "runs"),
        "--dim", "16", "--batch-size", "32", "--device", "cpu", *HEARTBEAT, *extra,
    ]  # fmt: skip
    env = {**subprocess_env(), BARRIER_ENV: str(tmp_path / "barrier")}
    (tmp_path / "barrier").mkdir(exist_ok=True)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen, timeout: float = 180) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def _study(url: str, name: str) -> optuna.Study:
    storage = resolve_storage(url, heartbeat_interval=None)
    return optuna.load_study(study_name=name, storage=storage.storage)


def test_server_url_is_masked_in_messages(postgres):
    assert "s3cret-pw" not in mask_url(postgres.url()) and ":***@127.0.0.1" in mask_url(postgres.url())
    assert resolve_storage(postgres.url()).kind == "rdb"


def test_two_workers_reach_the_exact_total_and_lose_no_trial(postgres, tmp_path):
    url, target = postgres.url(), 8
    workers = [  # a barrier in the data factory makes both start their trials together
        _worker(
            url,
            "two",
            target,
            tmp_path,
            "--epochs",
            "1",
            "--worker-index",
            str(i),
            factory=SYNCED_DATA_FACTORY,
        )
        for i in range(2)
    ]
    for process in workers:
        _finish(process)
    study = _study(url, "two")
    counts = budget_counts(study.trials)
    assert counts.finished == target  # COMPLETE + PRUNED + objective failures: exactly the target
    assert counts.running == 0 and counts.waiting == 0 and counts.stale == 0
    for trial in study.trials:  # every other trial is an overflow that lost the race for the last slot
        if trial.state == TrialState.FAIL:
            assert trial.user_attrs[STATUS_ATTR] == "overflow"
        else:
            assert "config" in trial.user_attrs
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len({t.user_attrs["worker"] for t in finished}) == 2  # both workers ran trials


def test_sigkilled_worker_trial_is_failed_and_retried(postgres, tmp_path):
    url, name, target = postgres.url(), "killed", 6
    # long-ish trials (many tiny epochs) so the victim is killed in the middle of one
    slow = ["--epochs", "30", "--pruner", "none"]
    victim = _worker(url, name, target, tmp_path, *slow, "--worker-index", "0")
    survivor = _worker(url, name, target, tmp_path, *slow, "--worker-index", "1")
    storage = resolve_storage(url, heartbeat_interval=None).storage

    def trial_of(process, trials):
        return next((t for t in trials if t.user_attrs.get("worker", "").endswith(f":{process.pid}")), None)

    deadline, victim_trial, survivor_started = time.monotonic() + 120, None, False
    while (victim_trial is None or not survivor_started) and time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            trials = optuna.load_study(study_name=name, storage=storage).get_trials()
        except KeyError:  # the study does not exist yet
            continue
        # kill only once the victim's trial has suggested all its parameters ("config" is stored right
        # after): a kill mid-suggestion leaves a partial parameter set that the retry completes differently
        running = [t for t in trials if t.state == TrialState.RUNNING and "config" in t.user_attrs]
        victim_trial = trial_of(victim, running)
        survivor_started = trial_of(survivor, trials) is not None
    assert victim_trial is not None and survivor_started, "the workers never started their trials"
    os.kill(victim.pid, signal.SIGKILL)  # mid-trial: its heartbeat stops, its trial stays RUNNING
    victim.wait(timeout=30)

    _finish(survivor)
    study = _study(url, name)
    counts = budget_counts(study.trials)
    assert counts.running == 0 and counts.waiting == 0  # nothing stuck after the grace period
    assert counts.finished == target  # the killed trial was replaced by its retry, not lost
    dead = study.trials[victim_trial.number]
    assert dead.state == TrialState.FAIL and STATUS_ATTR not in dead.user_attrs
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim_trial.number]
    assert len(retries) == 1 and retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retries[0].params == dead.params  # the same configuration, run again
    assert retries[0].user_attrs["worker"].endswith(f":{survivor.pid}")
