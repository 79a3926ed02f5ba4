"""``ray``: every task is a Ray task on a cluster (``--launcher ray`` of bench, eval, tune and encode).

The driver (this process) keeps the results tables, resume and failure isolation exactly as with the
local launcher: it submits one plain function per task, :func:`run_task`, the way Ray's docs show
(``ray.remote(run_task).options(num_cpus=threads, num_gpus=...)``; ``num_gpus``: 1 for a task that
wants a whole GPU — a finetune run, an encode shard — and ``gpu_fraction`` of one otherwise, when the
cluster has GPUs), collects each record with ``ray.wait`` as it finishes and records it itself. A task
whose worker or node dies is retried by Ray (``max_retries``, default 2); when the retries are spent,
the task is recorded with ``task.failed(...)`` naming the cause. A record reaches the driver once per
task, so a retried task is never recorded twice. Ctrl-C cancels the tasks in flight (their workers
are killed) and records nothing of them; if the driver dies, Ray kills the tasks it owns.

Features and checkpoints reach the workers in one of two ways, chosen by a probe task on every node
(``features="auto"``) and said in the output:

- **shared storage** (the normal cluster setup: the cache and runs directories on NFS/Lustre/...): the
  tasks get the cache entry folders (:class:`~fusionzoo.launch.transport.CacheHandle`) and memory-map
  them; each task writes its checkpoint into the runs directory;
- **Ray's object store** (no shared storage): the driver reads the features into memory once, puts
  them in the object store, and every worker process reads them from there (zero-copy numpy); the
  tasks send their checkpoint files back and the driver writes them.

Every node must have fusionzoo (and any ``--plugin`` module, at the same path) installed; the probe
checks the version.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fusionzoo.errors import FusionzooError
from fusionzoo.launch.base import (
    Driver,
    Launcher,
    TaskContext,
    as_records,
    idle,
    inputs_of,
    register_launcher,
)

__all__ = [
    "RayConnectError",
    "RayLauncher",
    "check_address",
    "cluster_slots",
    "connect",
    "probe_nodes",
    "require_ray",
]

EVENT_INTERVAL = 1.0  # seconds between forwarded step events of one run (epoch events always go)


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RuntimeError(
            "the ray launcher needs Ray on this machine and on every node: pip install 'fusionzoo[ray]'"
        ) from None
    return ray


class RayConnectError(FusionzooError, RuntimeError):
    """The Ray cluster address is malformed, or no Ray cluster answers there."""


GCS_ATTEMPTS = "1"  # Ray's tries to reach the GCS (about 35 s each; its default, 20, waits 12 minutes)


def cluster_address(address: str | None) -> tuple[str | None, str]:
    """(the address to join: ``address``, else ``$RAY_ADDRESS``, else None; where it came from)."""
    if address:
        return address, "--ray-address"
    return os.environ.get("RAY_ADDRESS") or None, "$RAY_ADDRESS"


def check_address(address: str | None, probe: bool = True) -> str | None:
    """The cluster address to join (see :func:`cluster_address`), checked before any work.

    ``auto``/``local`` (Ray finds or starts the cluster) pass as they are; ``HOST:PORT`` or
    ``ray://HOST:PORT`` must be well formed and, with ``probe``, accept a TCP connection within
    :data:`~fusionzoo.endpoints.PROBE_TIMEOUT`. Raises :class:`RayConnectError` naming the address.
    """
    from fusionzoo.endpoints import host_port, unreachable

    address, source = cluster_address(address)
    if address is None or address in ("auto", "local"):
        return address
    try:
        host, port = host_port(address.removeprefix("ray://"))
    except ValueError as exc:
        raise RayConnectError(
            f"{source} {address!r} is not a Ray cluster address ({exc}); expected HOST:PORT, e.g. "
            "10.0.0.1:6379, ray://head:10001 or auto"
        ) from None
    reason = unreachable(host, port) if probe else None
    if reason:
        raise RayConnectError(
            f"cannot reach the Ray cluster at {address} ({source}): {reason}. Is `ray start --head` running "
            "there, and is that its port?"
        )
    return address


@contextlib.contextmanager
def _signals_end_connect(address: str) -> Iterator[None]:
    """While ``ray.init`` blocks in Ray's C++ client, Python signal handlers cannot run (a SIGTERM or
    Ctrl-C waited for the end of the connect attempt). A watchdog thread reads the signal numbers
    Python's C handler writes to the wakeup fd and ends the process at once (exit 128 + signal):
    nothing has started yet that needs cleaning up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    try:
        previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main interpreter
        reader.close()
        writer.close()
        yield
        return
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if not select.select([reader], [], [], 0.1)[0]:
                continue
            for signum in reader.recv(64):
                if signum in (signal.SIGTERM, signal.SIGINT):
                    name = signal.Signals(signum).name
                    os.write(
                        2, f"\nstopped by {name} while connecting to the Ray cluster at {address}\n".encode()
                    )
                    os._exit(128 + signum)

    thread = threading.Thread(target=watch, name="fusionzoo-ray-connect", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        signal.set_wakeup_fd(previous)
        reader.close()
        writer.close()


def connect(address: str | None = None) -> bool:
    """Join the cluster at ``address`` (else ``$RAY_ADDRESS``, else start Ray on this machine).

    A malformed or unreachable address is a :class:`RayConnectError` at once (:func:`check_address`);
    Ray then gets one attempt to reach the cluster's GCS (``$RAY_gcs_server_port_wait_time_s``
    overrides), and SIGTERM or Ctrl-C end the process while it connects.
    Returns True when this call connected (the caller disconnects with ``ray.shutdown()``)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    address = check_address(address)
    options: dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": False}
    if address is None:
        from fusionzoo.launch.resources import usable_cores

        ray.init(num_cpus=usable_cores(), include_dashboard=False, **options)
        return True
    attempts = "RAY_gcs_server_port_wait_time_s"
    bounded = attempts not in os.environ
    if bounded:
        os.environ[attempts] = GCS_ATTEMPTS
    try:
        with _signals_end_connect(address):
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RayConnectError(f"cannot join the Ray cluster at {address}: {first}") from None
    finally:
        if bounded:
            os.environ.pop(attempts, None)
    return True


# ---------------------------------------------------------------------------------------- node probe
def _digest(path: str) -> str | None:
    import hashlib

    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _probe(files: list[str]) -> dict[str, Any]:
    import fusionzoo

    return {
        "host": socket.gethostname(),
        "version": fusionzoo.__version__,
        "files": {f: _digest(f) for f in files},
    }


def cluster_slots(threads: int = 1) -> int:
    """Tasks the connected cluster runs at once: one per GPU, else one per ``threads`` CPUs."""
    ray = require_ray()
    resources = ray.cluster_resources()
    if resources.get("GPU", 0) >= 1:
        return int(resources["GPU"])
    return max(1, int(resources.get("CPU", 1)) // max(1, threads))


def probe_nodes(files: list[str]) -> list[dict[str, Any]]:
    """What every alive node sees of ``files`` (sha256 or None), its host and fusionzoo version."""
    ray = require_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0, max_retries=1)(_probe)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [
        probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
            files
        )
        for n in nodes
    ]
    return [{**ray.get(ref, timeout=300), "node": n["NodeID"]} for n, ref in zip(nodes, refs, strict=True)]


def shared_files(files: list[str]) -> tuple[bool, list[dict[str, Any]]]:
    """(every node sees every file with the driver's content, the probe answers)."""
    local = {f: _digest(f) for f in files}
    answers = probe_nodes(files)
    shared = all(a["files"] == local for a in answers) and all(v is not None for v in local.values())
    return shared, answers


# ---------------------------------------------------------------------------------------- worker side
_PLUGINS_LOADED: set[str] = set()


class _Events:
    """Sends a run's progress events to the driver's queue actor (epoch events always, steps throttled)."""

    def __init__(self, queue: Any, run_id: str) -> None:
        self.queue, self.run_id, self.last = queue, run_id, 0.0

    def __call__(self, event: dict[str, Any]) -> None:
        now = time.monotonic()
        if event.get("event") == "step" and now - self.last < EVENT_INTERVAL:
            return
        self.last = now
        with contextlib.suppress(Exception):  # progress is best effort, never the run's failure
            self.queue.put_nowait((self.run_id, dict(event)))


def run_task(
    task: Any, handle: Any, threads: int, plugins: list[str], queue: Any, ship: bool
) -> tuple[list[Any], dict[str, bytes] | None]:
    """One task inside a Ray task: ``(its records, the files of its folder when shipped back)``."""
    import ray

    from fusionzoo import registry
    from fusionzoo.launch.pool import limit_threads
    from fusionzoo.launch.transport import folder_files, open_data

    limit_threads(threads)
    for target in plugins:
        if target not in _PLUGINS_LOADED:
            registry.load_plugin(target)
            _PLUGINS_LOADED.add(target)
    data = open_data(handle) if handle is not None else None
    events = _Events(queue, task.key) if queue is not None else None
    context = TaskContext(data, events, "cuda" if ray.get_gpu_ids() else "cpu")
    if not ship or task.checkpoint_dir is None:
        return as_records(task.execute(context)), None
    with tempfile.TemporaryDirectory(prefix="fusionzoo-task-") as tmp:
        folder = Path(tmp) / "output"
        records = as_records(task.with_checkpoint(folder).execute(context))
        ok = all(getattr(r, "status", "ok") != "failed" for r in records)
        files = folder_files(folder) if ok and folder.is_dir() else None
    return records, files


# ---------------------------------------------------------------------------------------- driver side
def _cause(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc
    return f"{type(cause).__name__}: {cause}".splitlines()[0][:300]


@register_launcher
class RayLauncher(Launcher):
    """Run every task on a Ray cluster; see the module docstring.

    ``address``: the cluster (``None``: ``$RAY_ADDRESS``, else Ray on this machine); ``jobs``: at most
    this many runs in flight (default: as many as the cluster's resources allow); ``threads``: CPUs per
    run; ``gpu_fraction``: GPU share of a frozen-mode run on a GPU cluster; ``features``: ``auto``
    (probe), ``shared`` or ``object_store``; ``max_retries``: Ray's retries of a task whose worker died.
    """

    name = "ray"
    description = "each run a Ray task on a cluster (--launcher ray --ray-address ADDR)"
    test_config = {"jobs": 2}

    def __init__(
        self,
        address: str | None = None,
        jobs: int | None = None,
        threads: int | None = None,
        device: str = "auto",
        gpu_fraction: float = 0.25,
        features: str = "auto",
        max_retries: int = 2,
    ) -> None:
        if features not in ("auto", "shared", "object_store"):
            raise ValueError(f"features={features!r}: expected auto, shared or object_store")
        if not 0 < gpu_fraction <= 1:
            raise ValueError(f"gpu_fraction must be in (0, 1], got {gpu_fraction}")
        self.address, self.jobs, self.threads, self.device = address, jobs, max(1, threads or 1), device
        self.gpu_fraction, self.features, self.max_retries = gpu_fraction, features, max_retries
        self.transport = ""  # "shared storage" | "object store", after run()

    # ------------------------------------------------------------------------------------- setup
    def _gpus_for(self, task: Any, cluster_gpus: float) -> float:
        if not cluster_gpus or self.device not in ("auto", "cuda") and not self.device.startswith("cuda"):
            return 0.0
        return 1.0 if task.whole_gpu else self.gpu_fraction

    def _check_required(self, tasks: list[Any]) -> None:
        """Files a task reads by path and that cannot travel (an encode shard's images) must be
        readable on every node: else a ``RuntimeError`` naming them and the blind nodes."""
        required = list(dict.fromkeys(f for t in tasks for f in getattr(t, "required_files", list)()))
        if not required:
            return
        sample = required[:: max(1, len(required) // 8)][:8]
        blind = sorted({a["host"] for a in probe_nodes(sample) if None in a["files"].values()})
        if blind:
            raise RuntimeError(
                f"the tasks' input files (e.g. {sample[0]}) are not readable on node(s) {', '.join(blind)}: "
                "put them on storage every node mounts at the same path"
            )

    def _choose_transport(self, datas: dict[str, Any], tasks: list[Any]) -> tuple[bool, str]:
        """(shared storage?, the line that says how features and checkpoints travel)."""
        from fusionzoo.launch.transport import data_handle

        if self.features == "object_store":
            return False, "through Ray's object store (features='object_store')"
        files: list[str] = []
        for data in datas.values():
            handle = data_handle(data)
            files += [str(p / "manifest.json") for p in getattr(handle, "paths", lambda: [])()]
        for task in tasks:  # inputs a task reads (an evaluation task's checkpoint, a shard's images)
            files += list(getattr(task, "input_files", list)())
        self._check_required(tasks)
        roots = {Path(t.checkpoint_dir).parent for t in tasks if t.checkpoint_dir is not None}
        tokens = []
        for root in roots:
            root.mkdir(parents=True, exist_ok=True)
            token = root / f".fusionzoo-probe-{uuid.uuid4().hex}"
            token.write_text(uuid.uuid4().hex)
            tokens.append(token)
        try:
            if self.features == "shared":
                return True, "from shared storage (features='shared')"
            if not files and not tokens:
                return False, "through Ray's object store (the data does not come from the feature cache)"
            shared, answers = shared_files(files + [str(t) for t in tokens])
        finally:
            for token in tokens:
                token.unlink(missing_ok=True)
        hosts = sorted({a["host"] for a in answers})
        versions = sorted({a["version"] for a in answers})
        if len(versions) > 1:
            raise RuntimeError(f"the Ray nodes run different fusionzoo versions: {', '.join(versions)}")
        if shared:
            return True, f"from the shared cache and runs directories (shared by all {len(answers)} node(s))"
        return False, (
            f"through Ray's object store: not every node ({', '.join(hosts)}) sees the cache or runs "
            "directory"
        )

    # --------------------------------------------------------------------------------------- run
    def run(self, tasks: list[Any], inputs_for: Callable[[str], Any], driver: Driver) -> None:
        if not tasks:
            return
        ray = require_ray()
        from ray.util.queue import Queue
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from fusionzoo.launch.pool import local_plugin_targets
        from fusionzoo.launch.transport import data_handle, write_folder

        # workers run in other folders (other machines): paths travel absolute
        given = {t.key: t.checkpoint_dir for t in tasks}
        tasks = [t.absolute() for t in tasks]
        started_here = connect(self.address)
        note = getattr(driver, "note", None) or (lambda message: None)
        refs: dict[Any, Any] = {}
        try:
            datas = inputs_of(tasks, inputs_for)
            shared, how = self._choose_transport(datas, tasks)
            self.transport = "shared storage" if shared else "object store"
            if not shared:  # file inputs (an evaluation's checkpoint) travel inside the task
                tasks = [t.portable() if hasattr(t, "portable") else t for t in tasks]
            handles = {d: ray.put(data_handle(data, by_reference=shared)) for d, data in datas.items()}
            resources = ray.cluster_resources()
            gpus = float(resources.get("GPU", 0))
            note(
                f"[bold]ray[/bold]: {len(tasks)} task(s) on {int(resources.get('CPU', 0))} CPU(s)"
                + (f" and {gpus:g} GPU(s)" if gpus else "")
                + f" of {len([n for n in ray.nodes() if n.get('Alive')])} node(s), {self.threads} thread(s) "
                f"per task; features and checkpoints {how}"
            )
            here = ray.get_runtime_context().get_node_id()
            queue = Queue(
                actor_options={
                    "num_cpus": 0,
                    "scheduling_strategy": NodeAffinitySchedulingStrategy(here, soft=False),
                }
            )
            remote = ray.remote(run_task)
            plugins = local_plugin_targets()
            by_key = {t.key: t for t in tasks}
            pending = list(tasks)
            limit = self.jobs or len(tasks)

            def submit(task: Any) -> None:
                ref = remote.options(
                    num_cpus=self.threads,
                    num_gpus=self._gpus_for(task, gpus),
                    max_retries=self.max_retries,
                    retry_exceptions=False,
                    name=f"fusionzoo:{task.label}",
                ).remote(task, handles.get(task.input), self.threads, plugins, queue, not shared)
                refs[ref] = task

            def drain() -> None:
                with contextlib.suppress(Exception):
                    size = queue.qsize()
                    if size:
                        for key, event in queue.get_nowait_batch(size):
                            if key in active:
                                driver.progress(by_key[key], event)

            active: set[str] = set()
            while pending or refs:
                while pending and len(refs) < limit:
                    task = pending.pop(0)
                    submit(task)
                    active.add(task.key)
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=0.25)
                drain()
                for ref in ready:
                    task = refs.pop(ref)
                    try:
                        records, files = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        records, files = [task.failed(f"Ray task failed ({_cause(exc)})")], None
                    if files is not None and task.checkpoint_dir is not None:
                        write_folder(Path(task.checkpoint_dir), files)
                    for record in records:
                        if getattr(record, "checkpoint", ""):  # the path as the driver named it
                            record.checkpoint = str(given[task.key])
                    active.discard(task.key)
                    for record in records:
                        driver.finished(record)
                idle(driver)
        finally:
            if refs:  # interrupted: cancel what runs (its workers are killed), keep nothing of it
                for ref in refs:
                    with contextlib.suppress(Exception):
                        ray.cancel(ref, force=True)
                with contextlib.suppress(Exception):
                    ray.wait(list(refs), num_returns=len(refs), timeout=30)
                for task in refs.values():
                    task.discard()
            if started_here:
                ray.shutdown()
