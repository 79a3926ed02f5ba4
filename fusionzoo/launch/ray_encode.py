"""``fusionzoo encode --launcher ray``: each shard of a split (a chunk range of its distinct images, then of
its distinct texts) is a Ray task (one GPU each when the
cluster has GPUs), the driver commits the entry (:mod:`fusionzoo.encoders.sharded`).

The encoders travel once through Ray's object store and are loaded once per worker process. The
images must be readable at the same path on every node (the dataset on shared storage); the shards'
chunk files are written straight into the driver's ``<entry>.partial/shards/`` when every node sees
the cache directory, else each task sends its files back and the driver writes them. An interrupted
encode (Ctrl-C, a dead node, a dead driver) keeps every finished shard and each unfinished shard's
complete chunks; the rerun encodes only the rest. A task whose worker dies is retried by Ray.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from fusionzoo.encoders.sharded import ShardJob, ShardResult, encode_shard

__all__ = ["RayShards", "default_shards"]

_ENCODERS: dict[str, Any] = {}  # per worker process: encoder key -> (image encoder, text encoder)


def _encode_task(job: ShardJob, key: str, encoders: list[Any], shared: bool) -> ShardResult:
    import ray

    from fusionzoo.launch.pool import limit_threads

    limit_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))
    if key not in _ENCODERS:
        _ENCODERS.clear()  # one encoder pair per worker process at a time
        _ENCODERS[key] = ray.get(encoders[0])
    image, text = _ENCODERS[key]
    device = "cuda" if ray.get_gpu_ids() else "cpu"
    if shared:
        return encode_shard(job, image, text, device=device)
    with tempfile.TemporaryDirectory(prefix="fusionzoo-shard-") as tmp:
        result = encode_shard(job, image, text, folder=Path(tmp) / "shard", device=device)
        folder = Path(tmp) / "shard"
        result.files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    return result


def default_shards(threads: int = 1) -> int:
    """Shards per split on the connected cluster: one per GPU, else one per ``threads`` CPUs."""
    import ray

    resources = ray.cluster_resources()
    if resources.get("GPU", 0) >= 1:
        return int(resources["GPU"])
    return max(1, int(resources.get("CPU", 1)) // max(1, threads))


class RayShards:
    """The ``run_shards`` of a :class:`~fusionzoo.encoders.sharded.ShardedEncoder` on a Ray cluster.

    ``with RayShards(image, text, address=...) as run: ShardedEncoder(run, shards)``; ``describe``
    says how shards reach the cache (after the first split)."""

    def __init__(
        self,
        image_encoder: Any,
        text_encoder: Any,
        *,
        address: str | None = None,
        threads: int = 1,
        device: str = "auto",
        max_retries: int = 2,
        console: Any = None,
    ) -> None:
        self.encoders = (image_encoder, text_encoder)
        self.address, self.threads, self.device, self.max_retries = (
            address,
            max(1, threads),
            device,
            max_retries,
        )
        self.console = console
        self.started_here = False
        self.ref: Any = None
        self.key = uuid.uuid4().hex
        self.shared: bool | None = None
        self.describe = ""

    def __enter__(self) -> RayShards:
        from fusionzoo.launch.ray import connect

        self.started_here = connect(self.address)
        import ray

        self.ref = ray.put(self.encoders)
        return self

    def __exit__(self, *exc: Any) -> None:
        import ray

        if self.started_here:
            ray.shutdown()

    def shards(self) -> int:
        return default_shards(self.threads)

    def _check_storage(self, jobs: list[ShardJob]) -> None:
        from fusionzoo.launch.ray import probe_nodes

        frame = next((j.frame for j in jobs if j.frame is not None), None)  # text shards carry no images
        images = (
            [str(p) for p in frame["image_path"].head(3)]
            if frame is not None and "image_path" in frame
            else []
        )
        root = Path(jobs[0].folder).parent
        root.mkdir(parents=True, exist_ok=True)
        token = root / f".fusionzoo-probe-{uuid.uuid4().hex}"
        token.write_text(uuid.uuid4().hex)
        try:
            answers = probe_nodes([*images, str(token)])
        finally:
            token.unlink(missing_ok=True)
        blind = [a["host"] for a in answers if any(a["files"].get(i) is None for i in images)]
        if blind:
            raise RuntimeError(
                f"the dataset's images (e.g. {images[0]}) are not readable on node(s) {', '.join(sorted(set(blind)))}: "
                "put the dataset on storage every node mounts at the same path"
            )
        self.shared = all(a["files"].get(str(token)) is not None for a in answers)
        self.describe = (
            f"shards written straight into {root} (shared by all {len(answers)} node(s))"
            if self.shared
            else "shards sent back through Ray's object store (the cache directory is not shared)"
        )
        if self.console is not None:
            self.console.print(f"\\[cache] ray: {self.describe}")

    def __call__(self, jobs: Iterable[ShardJob]) -> Iterator[ShardResult]:
        import ray

        jobs = list(jobs)
        if not jobs:
            return
        if self.shared is None:
            self._check_storage(jobs)
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 and self.device in ("auto", "cuda") else 0
        remote = ray.remote(_encode_task)
        refs = {
            remote.options(
                num_cpus=self.threads, num_gpus=gpus, max_retries=self.max_retries, retry_exceptions=False,
                name=f"fusionzoo:encode {job.label} {job.start}-{job.stop}",
            ).remote(job, self.key, [self.ref], bool(self.shared)): job
            for job in jobs
        }  # fmt: skip
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                for ref in ready:
                    refs.pop(ref)
                    yield ray.get(ref)
        finally:
            for ref in refs:  # interrupted: stop the shards still running (their complete chunks stay)
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
