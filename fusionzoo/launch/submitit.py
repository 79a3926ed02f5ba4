"""``submitit``: every run a SLURM job of one job array (``--launcher submitit:partition=gpu``).

submitit's ``AutoExecutor`` submits one array (``slurm_array_parallelism = --jobs``) of a plain function,
:func:`run_job` (``executor.submit(run_job, task, ...)``, as submitit's docs show), whose jobs each
execute one task and pickle its records back into the log folder; this process (the driver, e.g. on the login node) polls the jobs and records each run as
its job ends, exactly as with the local launcher. SLURM clusters share their file systems, so the
features travel as cache-entry folders (memory-mapped on the compute node) and checkpoints are
written straight into the runs directory. A job that fails outside the run (node failure, timeout,
preemption, out of memory) is recorded ``failed`` with submitit's message, and a rerun trains it
again; Ctrl-C cancels the jobs not finished yet (``scancel``) and records nothing of them. Without
SLURM (``cluster=local``), submitit runs the jobs as local processes (the tests).

Options (``submitit:key=value,...``): ``folder`` (logs and pickles, default ``<runs>/submitit``; for
tasks that keep no checkpoint, so name no runs directory, a temporary folder removed afterwards —
never a ``runs/`` folder in the current directory; on SLURM pass a folder on the shared file system),
``cluster`` (``slurm``/``local``/``debug``; default: what submitit detects), ``partition``,
``timeout_min`` (default 240), ``gpus`` (per job, default 0), ``mem_gb``, ``poll`` (seconds between
status checks).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fusionzoo.launch.base import (
    Driver,
    Launcher,
    TaskContext,
    as_records,
    idle,
    inputs_of,
    register_launcher,
)

__all__ = ["SubmititLauncher"]


def run_job(task: Any, handle: Any, threads: int, plugins: list[str]) -> list[Any]:
    """One SLURM job: ``task`` executed on the data of ``handle``; its records."""
    from fusionzoo import registry
    from fusionzoo.launch.pool import limit_threads
    from fusionzoo.launch.transport import open_data

    limit_threads(threads)
    for target in plugins:
        registry.load_plugin(target)
    data = open_data(handle) if handle is not None else None
    return as_records(task.execute(TaskContext(data, None, "auto")))


@register_launcher
class SubmititLauncher(Launcher):
    """Run every task as one job of a submitit job array; see the module docstring."""

    name = "submitit"
    description = "each run a SLURM job of one array (submitit; cluster=local runs them as processes)"
    test_config = {"cluster": "local", "poll": 0.5}

    def __init__(
        self,
        folder: str | None = None,
        cluster: str | None = None,
        partition: str | None = None,
        timeout_min: int = 240,
        gpus: int = 0,
        mem_gb: float | None = None,
        jobs: int | None = None,
        threads: int | None = None,
        poll: float = 10.0,
    ) -> None:
        self.folder, self.cluster, self.partition = folder, cluster, partition
        self.timeout_min, self.gpus, self.mem_gb = timeout_min, gpus, mem_gb
        self.jobs, self.threads, self.poll = jobs, max(1, threads or 1), poll
        self.submitted: list[Any] = []  # the submitit jobs of the last run()

    def _executor(self, folder: Path) -> Any:
        try:
            import submitit
        except ImportError:
            raise RuntimeError(
                "the submitit launcher needs submitit: pip install 'fusionzoo[slurm]'"
            ) from None
        executor = submitit.AutoExecutor(folder=folder, cluster=self.cluster)
        parameters: dict[str, Any] = {
            "timeout_min": self.timeout_min,
            "cpus_per_task": self.threads,
            "name": "fusionzoo",
        }
        if self.gpus:
            parameters["gpus_per_node"] = self.gpus
        if self.mem_gb:
            parameters["mem_gb"] = self.mem_gb
        if executor.cluster == "slurm":
            if self.partition:
                parameters["slurm_partition"] = self.partition
            if self.jobs:
                parameters["slurm_array_parallelism"] = self.jobs
        executor.update_parameters(**parameters)
        return executor

    def run(self, tasks: list[Any], inputs_for: Callable[[str], Any], driver: Driver) -> None:
        if not tasks:
            return
        given = {t.key: t.checkpoint_dir for t in tasks}  # jobs start elsewhere: absolute paths
        tasks = [t.absolute() for t in tasks]
        roots = {Path(t.checkpoint_dir).parent.parent for t in tasks if t.checkpoint_dir is not None}
        scratch = None if self.folder or roots else tempfile.mkdtemp(prefix="fusionzoo-submitit-")
        folder = (
            Path(self.folder) if self.folder else Path(scratch) if scratch else next(iter(roots)) / "submitit"
        )
        try:
            self._run(tasks, given, folder, inputs_for, driver)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)

    def _run(
        self,
        tasks: list[Any],
        given: dict[str, Any],
        folder: Path,
        inputs_for: Callable[[str], Any],
        driver: Driver,
    ) -> None:
        from fusionzoo.launch.pool import local_plugin_targets
        from fusionzoo.launch.transport import data_handle

        executor = self._executor(folder.resolve())
        handles = {key: data_handle(data) for key, data in inputs_of(tasks, inputs_for).items()}
        note = getattr(driver, "note", None) or (lambda message: None)
        plugins = local_plugin_targets()
        with executor.batch():
            jobs = [executor.submit(run_job, t, handles.get(t.input), self.threads, plugins) for t in tasks]
        self.submitted = jobs
        note(
            f"[bold]submitit[/bold]: {len(jobs)} job(s) on {executor.cluster}"
            + (f" (array {jobs[0].job_id.split('_')[0]})" if jobs and "_" in str(jobs[0].job_id) else "")
            + f", logs in {folder}"
        )
        pending = dict(zip(jobs, tasks, strict=True))
        try:
            while pending:
                for job in [j for j in pending if j.done()]:
                    task = pending.pop(job)
                    try:
                        records = job.result()
                    except Exception as exc:  # the job died outside the task: failed, the grid goes on
                        first = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]
                        records = [task.failed(f"job {job.job_id}: {first}")]
                    for record in records:
                        if getattr(record, "checkpoint", ""):  # the path as the driver named it
                            record.checkpoint = str(given[task.key])
                        driver.finished(record)
                if pending:
                    idle(driver)
                    time.sleep(self.poll)
        finally:
            for job, task in pending.items():  # interrupted: cancel what is left, keep nothing of it
                with contextlib.suppress(Exception):
                    job.cancel(check=False)
                task.discard()
