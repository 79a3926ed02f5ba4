"""benchmarks/perf/gpu_checks.py: on a machine without CUDA it says so and exits 0; bad input exits 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "perf" / "gpu_checks.py"


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="this machine has a GPU: the script would run its checks"
)
def test_without_a_gpu_it_says_so_and_exits_cleanly():
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "no GPU: torch.cuda.is_available() is False" in done.stdout
    assert "Traceback" not in done.stderr


def test_an_unknown_check_is_refused_before_any_work():
    done = subprocess.run([sys.executable, str(SCRIPT), "--only", "amp,warp"], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 2
    assert "--only: unknown check(s) warp; choose from amp, moe, ddp, compile, bench, encode" in done.stderr
