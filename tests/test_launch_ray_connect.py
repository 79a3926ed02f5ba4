"""``--launcher ray`` with a cluster address that is wrong: said at once, before any data work, naming
the address; a process stuck connecting to something that is not a Ray cluster ends on SIGTERM. Real
subprocesses (exit codes, stderr, signals); no Ray cluster is started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("ray")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _fusionzoo(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "fusionzoo", *args],
        capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})},
    )  # fmt: skip
    return done, time.monotonic() - started


COMMANDS = {
    "bench": ["bench", "--fusions", "concat_mlp", "--seeds", "0"],
    "tune": ["tune", "--fusion", "concat_mlp", "--trials", "1"],
    "encode": ["encode", "--dataset", "synth"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unreachable_cluster_is_named_at_once_before_any_data_work(command, tmp_path):
    address = f"127.0.0.1:{_closed_port()}"
    args = [
        *COMMANDS[command],
        "--data-dir",
        str(tmp_path / "data"),
        "--launcher",
        "ray",
        "--ray-address",
        address,
    ]
    if command != "encode":
        args += ["--out", str(tmp_path / "runs")]
    done, seconds = _fusionzoo(*args)
    assert done.returncode == 2 and seconds < 60, done.stderr  # Ray alone retries for 5+ minutes
    assert f"cannot reach the Ray cluster at {address} (--ray-address): connection refused" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "data").exists()


def test_eval_names_an_unreachable_cluster_before_any_data_work(tmp_path):
    import pandas as pd

    from fusionzoo.results.store import REQUIRED_COLUMNS, write_table

    (tmp_path / "runs").mkdir()
    write_table(tmp_path / "runs" / "results.parquet", pd.DataFrame(columns=list(REQUIRED_COLUMNS)))
    address = f"127.0.0.1:{_closed_port()}"
    done, seconds = _fusionzoo(
        "eval",
        str(tmp_path / "runs"),
        "--protocols",
        "missing_image",
        "--launcher",
        "ray",
        "--ray-address",
        address,
    )
    assert done.returncode == 2 and seconds < 60, done.stderr
    assert f"cannot reach the Ray cluster at {address} (--ray-address)" in done.stderr


@pytest.mark.parametrize(
    ("address", "env", "named"),
    [
        ("not a host::99", {}, "--ray-address 'not a host::99' is not a Ray cluster address"),
        ("head:port", {}, "port 'port' is not a number"),
        (
            None,
            {"RAY_ADDRESS": "head"},
            "$RAY_ADDRESS 'head' is not a Ray cluster address (expected HOST:PORT)",
        ),
    ],
)
def test_a_malformed_address_is_a_usage_error_before_any_data_work(address, env, named, tmp_path):
    args = [*COMMANDS["bench"], "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "runs")]
    args += ["--launcher", "ray"] + (["--ray-address", address] if address else [])
    done, _ = _fusionzoo(*args, env=env)
    assert done.returncode == 2 and named in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "data").exists()


def test_sigterm_ends_a_process_stuck_connecting(tmp_path):
    """A port that accepts connections but is no Ray GCS: ``ray.init`` blocks in Ray's C++ client,
    where Python's signal handlers do not run (before: SIGTERM waited ~30 s for the attempt to end)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        address = f"127.0.0.1:{server.getsockname()[1]}"
        code = (
            f"from fusionzoo.launch.ray import connect; print('connecting', flush=True); connect({address!r})"
        )
        process = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            assert process.stdout.readline().strip() == "connecting"
            time.sleep(8)  # past the TCP probe, inside ray.init's first GCS attempt (5 s + 30 s)
            assert process.poll() is None, process.stderr.read()
            process.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            process.wait(timeout=60)
            waited = time.monotonic() - sent
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stderr = process.stderr.read()
    assert waited < 5 and process.returncode == 128 + signal.SIGTERM, (waited, process.returncode, stderr)
    assert f"stopped by SIGTERM while connecting to the Ray cluster at {address}" in stderr


def test_connect_names_an_unreachable_address_without_starting_ray(monkeypatch):
    from fusionzoo.launch.ray import RayConnectError, connect

    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{_closed_port()}")
    started = time.monotonic()
    with pytest.raises(
        RayConnectError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:\d+ \(\$RAY_ADDRESS\)"
    ):
        connect(None)
    assert time.monotonic() - started < 15
