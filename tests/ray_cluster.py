"""A real multi-node Ray cluster on this machine for the tests: a head node and worker nodes, each a
``ray start --block`` process in its own process group on free ports and a private temp dir, stopped
by killing exactly those process groups (never ``ray stop``, which would stop other users' clusters)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
        ports.append(sock.getsockname()[1])
    for sock in sockets:
        sock.close()
    return ports


def _port_range(width: int = 40) -> tuple[int, int]:
    """A run of ``width`` free ports for Ray's worker processes."""
    for _ in range(200):
        start = free_ports(1)[0]
        if start + width >= 65535:
            continue
        try:
            taken = []
            for port in range(start, start + width):
                sock = socket.socket()
                sock.bind(("127.0.0.1", port))
                taken.append(sock)
            for sock in taken:
                sock.close()
            return start, start + width - 1
        except OSError:
            for sock in taken:
                sock.close()
    raise RuntimeError("no free port range for Ray workers")


class LocalRayCluster:
    """``with LocalRayCluster(workers=1) as cluster: ... cluster.address ... cluster.kill_worker(0)``.

    The cluster uses token authentication with a private token file: drivers need ``cluster.auth`` in
    their environment (``cluster.env`` holds it).
    """

    def __init__(self, workers: int = 1, cpus: int = 1, object_store: int = 100 << 20, env=None) -> None:
        self.workers, self.cpus, self.object_store = workers, cpus, object_store
        self.temp = Path(tempfile.mkdtemp(prefix="fzray-", dir="/tmp"))  # short: Ray's socket paths
        token = self.temp / "auth_token"  # a private token: never ~/.ray/auth_token, shared by other users
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        self.auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **(env or {}), **self.auth}
        self.head: subprocess.Popen | None = None
        self.nodes: list[subprocess.Popen] = []
        self.address = ""

    def _common(self) -> list[str]:
        low, high = _port_range()
        node, objects, agent, grpc, runtime, metrics = free_ports(6)
        return [
            "--node-ip-address", "127.0.0.1", "--num-cpus", str(self.cpus), "--num-gpus", "0",
            "--object-store-memory", str(self.object_store), "--node-manager-port", str(node),
            "--object-manager-port", str(objects), "--min-worker-port", str(low), "--max-worker-port",
            str(high), "--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port", str(grpc),
            "--runtime-env-agent-port", str(runtime), "--metrics-export-port", str(metrics),
            "--disable-usage-stats", "--block",
        ]  # fmt: skip

    def _start(self, args: list[str], name: str) -> subprocess.Popen:
        log = open(self.temp / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(
            [RAY, "start", *args], stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )

    def __enter__(self) -> LocalRayCluster:
        port = free_ports(1)[0]
        self.address = f"127.0.0.1:{port}"
        try:
            self.head = self._start(
                ["--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir",
                 str(self.temp / "ray"), *self._common()],
                "head",
            )  # fmt: skip
            self.wait_for_nodes(1)
            for i in range(self.workers):
                self.nodes.append(self._start(["--address", self.address, *self._common()], f"worker{i}"))
            self.wait_for_nodes(1 + self.workers)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def alive_nodes(self) -> int:
        probe = (
            "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False);"
            "print(sum(1 for n in ray.nodes() if n['Alive']))"
        )
        try:
            out = subprocess.run(
                [sys.executable, "-c", probe, self.address], capture_output=True, text=True, env=self.env,
                timeout=300,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return 0
        try:
            return int(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return 0

    def wait_for_nodes(self, count: int, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.head is not None and self.head.poll() is not None:
                raise RuntimeError(f"ray head exited: {(self.temp / 'head.log').read_text()[-3000:]}")
            if self.alive_nodes() >= count:
                return
            time.sleep(1)
        raise RuntimeError(f"the Ray cluster did not reach {count} nodes: {self.logs()}")

    def logs(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in sorted(self.temp.glob("*.log")))

    @staticmethod
    def _kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)

    def kill_worker(self, index: int = 0) -> None:
        """SIGKILL worker node ``index``: its raylet and every worker process of that node."""
        self._kill_group(self.nodes[index])

    def __exit__(self, *exc: object) -> None:
        for proc in [*self.nodes, self.head]:
            if proc is not None and proc.poll() is None:
                self._kill_group(proc, signal.SIGTERM)
            if proc is not None:
                self._kill_group(proc)
        shutil.rmtree(self.temp, ignore_errors=True)
