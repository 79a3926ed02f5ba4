"""``fusionzoo bench`` end to end on a tiny embedded dataset: CliRunner, a real subprocess, SIGKILL, SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from fusionzoo.cli.bench import bench

# a 4-class embedded dataset (2 image keys × 2 text keys), 240 listings: generated and encoded once
TINY_DATA = ["size=240", "n_colours=2", "n_shapes=1", "n_genders=1", "n_materials=2"]
TINY_RUN = ["--epochs", "2", "--dim", "16", "--batch-size", "32"]


def _data_args(data_dir: Path) -> list[str]:
    args = ["--data-dir", str(data_dir)]
    for option in TINY_DATA:
        args += ["--data-option", option]
    return args


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Generate and encode the tiny dataset once (a dry run would not: run one tiny grid)."""
    root = tmp_path_factory.mktemp("bench-data")
    result = CliRunner().invoke(
        bench,
        [
            *_data_args(root),
            "--fusions",
            "concat_mlp",
            "--seeds",
            "0",
            "--no-unimodal",
            *TINY_RUN,
            "--out",
            str(root / "warmup"),
        ],
    )
    assert result.exit_code == 0, result.output
    return root


def _fusionzoo() -> str:
    script = Path(sys.executable).with_name("fusionzoo")
    assert script.exists(), f"the installed fusionzoo script is missing next to {sys.executable}"
    return str(script)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _rows(out: Path) -> pd.DataFrame:
    path = out / "results.parquet"
    if not path.exists():
        return pd.DataFrame(columns=["run_id"])
    try:
        return pd.read_parquet(path)
    except Exception:  # noqa: BLE001 - never torn (atomic replace), but be safe while polling
        return pd.DataFrame(columns=["run_id"])


def test_cli_end_to_end_leaderboard_resume_and_dry_run(data_dir, tmp_path):
    out = tmp_path / "runs"
    args = [
        *_data_args(data_dir),
        "--fusions",
        "concat_mlp,film",
        "--seeds",
        "0,1",
        *TINY_RUN,
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(bench, args)
    assert result.exit_code == 0, result.output
    assert "leaderboard · synth · test_accuracy" in result.output
    assert "±" in result.output  # 2 seeds: confidence intervals printed
    assert "image_only" in result.output and "text_only" in result.output  # unimodal on for the embedded set
    assert "best multimodal − best unimodal" in result.output
    assert f"results: {out / 'results.parquet'}" in result.output.replace("\n", "")
    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == 8 and table["run_id"].is_unique and set(table["status"]) == {"ok"}

    again = CliRunner().invoke(bench, args)
    assert again.exit_code == 0, again.output
    assert "8 finished run(s) reused" in again.output and "ran 0 runs" in again.output
    assert len(pd.read_parquet(out / "results.parquet")) == 8

    dry = CliRunner().invoke(bench, [*args[:-2], "--seeds", "0,1,2", "--out", str(out), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "train cached" in dry.output and "finished (reused)" in dry.output and "to run" in dry.output
    assert "cost estimate" in dry.output and "Nothing was trained" in dry.output
    assert (
        "estimated from" in dry.output and "earlier runs (2)" in dry.output
    )  # seeds 0, 1 of the same config
    assert len(pd.read_parquet(out / "results.parquet")) == 8
    fresh = CliRunner().invoke(bench, [*args[:-2], "--out", str(tmp_path / "fresh"), "--dry-run"])
    assert fresh.exit_code == 0, fresh.output  # no earlier run, features cached: timed training steps
    assert "timed steps" in fresh.output and "from timed steps" in fresh.output


def test_installed_script_as_a_subprocess(data_dir, tmp_path):
    out = tmp_path / "runs"
    proc = subprocess.run(
        [
            _fusionzoo(),
            "bench",
            *_data_args(data_dir),
            "--fusions",
            "film",
            "--seeds",
            "0",
            "--no-unimodal",
            *TINY_RUN,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "leaderboard" in proc.stdout and "results:" in proc.stdout
    assert len(pd.read_parquet(out / "results.parquet")) == 1


SLOW_FUSION = '''
import time
from fusionzoo.fusions.concat_mlp import ConcatMLP
from fusionzoo.registry import register_fusion

@register_fusion
class SlowConcat(ConcatMLP):
    """concat_mlp that sleeps 20 ms per forward: a grid long enough to interrupt on any machine."""
    name = "slow_concat"
    def forward(self, *args, **kwargs):
        time.sleep(0.02)
        return super().forward(*args, **kwargs)
'''


def _grid_args(data_dir: Path, out: Path) -> list[str]:
    """A 24-run grid whose runs take about a second each (a slow fusion), so a signal lands mid-grid."""
    plugin = out.parent / "slow_fusion.py"
    plugin.write_text(SLOW_FUSION)
    return [
        _fusionzoo(), "bench", *_data_args(data_dir), "--plugin", str(plugin), "--fusions", "concat_mlp,slow_concat",
        "--seeds", "0,1,2,3,4,5", "--epochs", "4", "--dim", "16", "--batch-size", "16", "--out", str(out),
    ]  # fmt: skip


def _as_in_a_terminal() -> None:
    """Ctrl-C's default disposition in the child: a suite started in the background (``cmd &`` in a
    non-interactive shell, nohup) inherits SIGINT *ignored*, and Python then keeps ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_grid(data_dir: Path, out: Path) -> tuple[subprocess.Popen, int]:
    args = _grid_args(data_dir, out)
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
        preexec_fn=_as_in_a_terminal,
    )
    return proc, 4 * 6  # concat_mlp, slow_concat, image_only, text_only × 6 seeds


def _wait_for_rows(proc: subprocess.Popen, out: Path, at_least: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = len(_rows(out))
        if n >= at_least:
            return n
        if proc.poll() is not None:
            pytest.fail(f"bench ended early ({proc.returncode}): {proc.stdout.read()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("no run finished in time")


def test_sigkill_mid_grid_then_rerun_resumes_without_duplicates(data_dir, tmp_path):
    out = tmp_path / "runs"
    proc, total = _start_grid(data_dir, out)
    _wait_for_rows(proc, out, 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    killed_rows = _rows(out)
    assert 2 <= len(killed_rows) < total, "the grid should have been killed mid-way"
    assert killed_rows["run_id"].is_unique
    rerun = subprocess.run(
        _grid_args(data_dir, out),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{total} runs; {len(killed_rows)} finished run(s) reused" in rerun.stdout
    final = _rows(out)
    assert len(final) == total and final["run_id"].is_unique and set(final["status"]) == {"ok"}
    assert set(killed_rows["run_id"]) <= set(final["run_id"])
    history = pd.read_parquet(out / "history.parquet")
    assert set(history["run_id"]) == set(final["run_id"])
    assert not history.duplicated(["run_id", "epoch"]).any()


def test_sigint_discards_the_current_run_cleanly(data_dir, tmp_path):
    out = tmp_path / "runs"
    proc, total = _start_grid(data_dir, out)
    _wait_for_rows(proc, out, 1)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "interrupted: the current run was discarded" in output
    assert "Traceback" not in output
    rows = _rows(out)
    assert rows["run_id"].is_unique and set(rows["status"]) == {"ok"} and len(rows) < total
    checkpoints = {p.name for p in (out / "checkpoints").iterdir()}
    assert checkpoints == set(rows["run_id"])  # the interrupted run left no partial checkpoint
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
