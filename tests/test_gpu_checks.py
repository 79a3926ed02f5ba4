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


def test_its_code_paths_run_on_a_cpu_with_tiny_shapes():
    """``--device cpu --tiny``: every check but compile (minutes of inductor on a CPU) and bench runs
    its code to the end — the AMP step, the three MoE dispatches, the DDP skip message, the encoders."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--steps", "1", "--only", "amp,moe,ddp,encode"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "failed: none" in out and "bf16 / fp32 step time" in out
    assert "grouped" in out and "padded" in out and "loop" in out
    assert "skipped: DDP over NCCL needs 2 GPUs" in out
    assert "ViT-B/16: fp32" in out and "mBERT-sized: fp32" in out
