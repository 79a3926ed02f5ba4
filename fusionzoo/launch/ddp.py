"""``ddp``: each run trained by all torchrun processes together (DistributedDataParallel, finetune mode).

    torchrun --nproc-per-node 4 -m fusionzoo bench --mode finetune --fusions fluid ...
    fusionzoo bench --mode finetune --ddp 4 ...          # the same, torchrun started for you

Every rank runs the same command: it loads the dataset, builds the encoders and expands the grid; rank
0's list of runs still to do is broadcast so every rank trains the same runs in the same order; the
trainer shards the batches and synchronises evaluation (:mod:`fusionzoo.train.distributed`); only rank
0 writes checkpoints and records results (the numbers format is that of a single-process run). A run
that fails on every rank at once (a bad plugin, a non-finite loss) is recorded ``failed`` as usual; an
exception on one rank only leaves the others waiting in a collective until the process group's
timeout (30 min), after which torchrun stops the job and a rerun redoes the unrecorded run.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any

from fusionzoo.launch.base import Driver, Launcher, as_records, execute_run, register_launcher

__all__ = ["DDPLauncher", "launch_bench"]


@register_launcher
class DDPLauncher(Launcher):
    """Run every task on all ranks of the torchrun process group; see the module docstring."""

    name = "ddp"
    description = "each run on all torchrun processes (DistributedDataParallel; bench --ddp N)"

    def __init__(self, device: str = "auto") -> None:
        self.device = device

    def run(self, tasks: list[Any], inputs_for: Callable[[str], Any], driver: Driver) -> None:
        import torch.distributed as dist

        from fusionzoo.train import distributed

        group = distributed.init_from_env(self.device)
        if group is None:  # one process: nothing to share
            for task in tasks:
                for record in as_records(execute_run(task, _input(task, inputs_for))):
                    driver.finished(record)
            return
        order = [[t.key for t in tasks]] if group.main else [None]
        dist.broadcast_object_list(order, src=0)  # rank 0's view of what is left decides
        by_id = {t.key: t for t in tasks}
        missing = [r for r in order[0] if r not in by_id]
        if missing:
            raise RuntimeError(
                f"rank {group.rank} does not know run(s) {', '.join(missing)} of rank 0's grid"
            )
        for run_id in order[0]:
            task = by_id[run_id]
            mine = task if group.main else task.with_checkpoint(None)  # only rank 0 writes the checkpoint
            progress = (lambda event, t=task: driver.progress(t, event)) if group.main else None
            records = as_records(execute_run(mine, _input(task, inputs_for), progress=progress))
            if group.main:
                for record in records:
                    driver.finished(record)
        dist.barrier()


def _input(task: Any, inputs_for: Callable[[str], Any]) -> Any:
    return inputs_for(task.input) if task.input is not None else None


def _rank_entry(config: dict[str, Any], name: str, plugins: list[str]) -> dict[str, int]:
    """One rank of ``bench --ddp N`` (started by torch's elastic launcher): the bench of ``config``."""
    from rich.console import Console

    from fusionzoo import registry
    from fusionzoo.bench.session import run_bench
    from fusionzoo.config import ExperimentConfig
    from fusionzoo.experiment import Experiment
    from fusionzoo.results.store import ResultsStore
    from fusionzoo.train import distributed

    for target in plugins:
        registry.load_plugin(target)
    experiment = Experiment(ExperimentConfig.model_validate({**config, "name": name}))
    group = distributed.init_from_env(experiment.config.bench.device)
    main = group is None or group.main
    console = Console(highlight=False, width=160) if main else Console(file=io.StringIO())
    outcome = run_bench(experiment, ResultsStore(experiment.config.runs_dir()), console)
    return {"ran": len(outcome.ran), "failed": len(outcome.failed)}


def launch_bench(config: Any, processes: int, plugins: list[str] | None = None) -> dict[str, int]:
    """Run the bench of ``config`` on ``processes`` local processes under torch's elastic launcher
    (what ``torchrun --standalone --nproc-per-node N`` does); returns rank 0's counts."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    launch = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=processes,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        start_method="spawn",
    )
    payload = config.model_dump(mode="json")
    payload["bench"] = {**payload["bench"], "ddp": None, "out": str(config.runs_dir())}
    results = elastic_launch(launch, _rank_entry)(payload, config.name, list(plugins or []))
    return results[0]
