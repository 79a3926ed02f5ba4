"""``fusionzoo tune --workers N``: a worker process that fails is an error of the command, not a line."""

from __future__ import annotations

import os
import subprocess
import sys

from tune_helpers import BROKEN_IN_WORKERS_FACTORY, TINY_FLAGS, subprocess_env


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
