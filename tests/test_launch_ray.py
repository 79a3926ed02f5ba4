"""The ``ray`` launcher on a REAL two-node Ray cluster on this machine (a head and a worker node, each
``ray start --block`` on 127.0.0.1 with one CPU, started and stopped by the module fixture): bench,
the object-store transport, eval tasks, encode shards, tune workers, and a worker node SIGKILLed
mid-grid."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ray")

from launch_helpers import TINY_DATA, tiny_bench_args, wait_until  # noqa: E402
from ray_cluster import LocalRayCluster  # noqa: E402

pytestmark = pytest.mark.slow
TESTS_DIR = Path(__file__).resolve().parent


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def cluster():
    with LocalRayCluster(workers=1, cpus=1, env=_env()) as running:
        saved = {k: os.environ.get(k) for k in running.auth}
        os.environ.update(running.auth)  # every driver of this module (subprocesses copy os.environ)
        try:
            yield running
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _fusionzoo(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fusionzoo", *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny grid trained by the local launcher, one run at a time (also generates + encodes the data)."""
    root = tmp_path_factory.mktemp("ray-bench")
    done = _fusionzoo(*tiny_bench_args(root / "data", root / "local", "--jobs", "1"))
    assert done.returncode == 0, done.stdout + done.stderr
    return root, pd.read_parquet(root / "local" / "results.parquet").set_index("run_id")


def _same_table(out: Path, reference: pd.DataFrame) -> pd.DataFrame:
    table = pd.read_parquet(out / "results.parquet").set_index("run_id")
    assert table.index.is_unique and sorted(table.index) == sorted(reference.index)
    metrics = [c for c in reference.columns if c.startswith(("test_", "val_"))]
    pd.testing.assert_frame_equal(table.loc[reference.index, metrics], reference[metrics])
    assert set(table["status"]) == {"ok"}
    return table


def test_bench_on_two_nodes_equals_the_local_launcher(cluster, reference):
    root, local = reference
    out = root / "ray"
    done = _fusionzoo(
        *tiny_bench_args(root / "data", out, "--launcher", "ray", "--ray-address", cluster.address)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "of 2 node(s)" in done.stdout and "from the shared cache and runs directories" in done.stdout
    table = _same_table(out, local)
    assert all((Path(p) / "model.safetensors").exists() for p in table["checkpoint"])
    again = _fusionzoo(
        *tiny_bench_args(root / "data", out, "--launcher", "ray", "--ray-address", cluster.address)
    )
    assert (
        again.returncode == 0 and "6 finished run(s) reused" in again.stdout and "ran 0 runs" in again.stdout
    )


def test_object_store_transport_ships_features_and_checkpoints(cluster, reference):
    """Without shared storage the features travel through Ray's object store and each run's checkpoint
    comes back to the driver, which writes it (forced here: both nodes share this machine's disk)."""
    from fusionzoo.train.checkpoint import load_checkpoint

    root, local = reference
    out = root / "ray-object-store"
    done = _fusionzoo(
        *tiny_bench_args(root / "data", out, "--launcher", "ray:features=object_store", "--ray-address",
                     cluster.address)
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "features and checkpoints through Ray's object store" in done.stdout
    table = _same_table(out, local)
    for run_id, row in table.iterrows():
        _, _, info = load_checkpoint(row["checkpoint"])
        assert info["test_metrics"]["accuracy"] == row["test_accuracy"], run_id


EVAL_PROTOCOLS = "missing_image:rates=0;1,text_typos:kind=swap,rates=0;1"


def test_eval_on_two_nodes_equals_the_local_evaluation(cluster, reference):
    """``fusionzoo eval --launcher ray``: every evaluation task (token and raw protocols) a Ray task, the
    checkpoints read from shared storage or shipped inside the tasks, rows equal to one process's."""
    import shutil

    from fusionzoo.evaluation.tables import EvalTables
    from fusionzoo.results.store import ResultsStore

    root, _ = reference
    copies = {name: root / f"eval-{name}" for name in ("local", "shared", "object")}
    for copy in copies.values():
        shutil.copytree(root / "local", copy)
    local = _fusionzoo("eval", str(copies["local"]), "--protocols", EVAL_PROTOCOLS, "--jobs", "1")
    assert local.returncode == 0, local.stdout + local.stderr
    for name, launcher, says in (
        ("shared", "ray", "from the shared cache and runs directories"),
        ("object", "ray:features=object_store", "through Ray's object store"),
    ):
        done = _fusionzoo("eval", str(copies[name]), "--protocols", EVAL_PROTOCOLS, "--launcher", launcher,
                          "--ray-address", cluster.address)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "of 2 node(s)" in done.stdout and says in done.stdout
        tables = [
            EvalTables(ResultsStore(copies[k]))
            .robustness()
            .sort_values("eval_fingerprint")
            .reset_index(drop=True)
            for k in ("local", name)
        ]
        assert len(tables[0]) == 6 * 4
        pd.testing.assert_frame_equal(tables[0], tables[1])


def test_encode_shards_on_two_nodes_equal_a_local_encode(cluster, reference, tmp_path):
    from fusionzoo.encoders.cache_format import open_entry

    root, _ = reference
    common = ["--dataset", "synth", "--data-dir", str(root / "data"), "--batch-size", "16"]
    for option in TINY_DATA:
        common += ["--data-option", option]
    local = _fusionzoo("encode", *common, "--cache-dir", str(tmp_path / "local"))
    assert local.returncode == 0, local.stdout + local.stderr
    sharded = _fusionzoo(
        "encode", *common, "--cache-dir", str(tmp_path / "ray"), "--launcher", "ray", "--ray-address",
        cluster.address, "--jobs", "2",
    )  # fmt: skip
    assert sharded.returncode == 0, sharded.stdout + sharded.stderr
    assert "shard(s)" in sharded.stderr and "shared by all 2 node(s)" in sharded.stderr
    for split in ("train", "val", "test"):  # (the keys differ: each cache dir builds its own synth encoders)
        [mine] = [p for p in (tmp_path / "local").glob(f"synth-{split}-*") if not p.suffix]
        [theirs] = [p for p in (tmp_path / "ray").glob(f"synth-{split}-*") if not p.suffix]
        mine, theirs = open_entry(mine, "full"), open_entry(theirs, "full")  # every sha256 checked
        for name in ("image_tokens", "text_tokens", "text_offsets", "labels"):
            np.testing.assert_array_equal(np.asarray(getattr(mine, name)), np.asarray(getattr(theirs, name)))
    again = _fusionzoo(
        "encode", *common, "--cache-dir", str(tmp_path / "ray"), "--launcher", "ray", "--ray-address",
        cluster.address,
    )  # fmt: skip
    assert again.returncode == 0 and again.stderr.count("reusing cached features") == 3


def test_tune_workers_as_ray_tasks_share_one_study(cluster, tmp_path):
    import optuna

    from fusionzoo.tune.budget import budget_counts
    from fusionzoo.tune.storage import resolve_storage

    journal = tmp_path / "optuna.journal"
    done = _fusionzoo(
        "tune", "--fusion", "concat_mlp", "--head", "linear", "--storage", f"journal:{journal}", "--study", "r",
        "--trials", "4", "--jobs", "2", "--launcher", "ray", "--ray-address", cluster.address,
        "--data-factory", "tune_helpers:tiny_data", "--out", str(tmp_path / "runs"), "--epochs", "1",
        "--dim", "16", "--batch-size", "32", "--device", "cpu",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    study = optuna.load_study(study_name="r", storage=resolve_storage(f"journal:{journal}").storage)
    counts = budget_counts(study.trials)
    assert counts.finished == 4 and counts.running == 0 and counts.waiting == 0


def test_a_worker_node_killed_mid_grid_loses_and_duplicates_nothing(cluster, reference):
    """Last in this module: it leaves the cluster with its head node only."""
    root, local = reference
    out = root / "ray-killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fusionzoo", *tiny_bench_args(root / "data", out, "--launcher", "ray",
                                                          "--ray-address", cluster.address)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(),
    )  # fmt: skip

    def rows() -> int:
        try:
            return len(pd.read_parquet(out / "results.parquet"))
        except Exception:  # noqa: BLE001 - not written yet
            return 0

    assert wait_until(lambda: rows() >= 1 or proc.poll() is not None, timeout=600, interval=0.05)
    at_kill = rows()
    cluster.kill_worker(0)  # the raylet and every worker process of that node, SIGKILL
    killed_at = time.monotonic()
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output
    assert 1 <= at_kill < 6, f"the node was killed after {at_kill} of 6 runs"
    _same_table(out, local)  # every run exactly once, with the local launcher's numbers
    history = pd.read_parquet(out / "history.parquet")
    assert not history.duplicated(["run_id", "epoch"]).any()
    assert time.monotonic() - killed_at < 900
