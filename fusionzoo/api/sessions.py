"""The bench and eval sessions of a validated config, shared by the Python API and the command line.

Each command is two steps, so a caller can tell a wrong input from a failure of the work:

- ``prepare_*`` checks everything that can be checked before any data is touched and raises
  ``ConfigError``/``RegistryError`` (a wrong value: ``fusionzoo bench`` exits 2) or ``ResultsError``
  (an unusable runs directory);
- ``run_*`` does the work, prints to a rich console and returns :class:`~fusionzoo.api.results.Results`;
  a failed run is listed in ``Results.failed``, not raised (the command line then exits 1).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from fusionzoo.api.results import Results
from fusionzoo.config import ConfigError, ExperimentConfig
from fusionzoo.errors import FusionzooError, InputError
from fusionzoo.experiment import Experiment
from fusionzoo.registry import RegistryError
from fusionzoo.results.store import ResultsStore

__all__ = [
    "console",
    "open_store",
    "prepare_bench",
    "prepare_eval",
    "run_bench",
    "run_eval",
    "validated_experiment",
]


def console(verbose: bool = True) -> Any:
    """The rich console a session prints to: the terminal (wide enough for the leaderboard when output
    is not a terminal), or nothing when ``verbose`` is false or this is a torchrun rank other than 0."""
    import os

    from rich.console import Console

    if not verbose or int(os.environ.get("RANK", "0")) > 0:  # torchrun: rank 0 speaks for every rank
        return Console(file=io.StringIO())
    out = Console(highlight=False)
    return out if out.is_terminal or out.is_jupyter else Console(highlight=False, width=160)


def validated_experiment(config: ExperimentConfig) -> Experiment:
    """The experiment of ``config``, checked before any data (:func:`fusionzoo.bench.checks.validate_bench`);
    a wrong value raises an ``InputError`` (a dataset's ``ValueError`` becomes a ``ConfigError``)."""
    from fusionzoo.bench.checks import validate_bench

    experiment = Experiment(config)
    try:
        validate_bench(experiment)
    except InputError:
        raise
    except (FusionzooError, ValueError) as exc:  # a dataset option, a plugin refusing a hyperparameter
        raise ConfigError(str(exc), param_hint=getattr(exc, "param_hint", None)) from exc
    return experiment


def open_store(experiment: Experiment) -> ResultsStore:
    """The results store of ``experiment``'s runs directory (``ResultsError`` when it is unusable)."""
    return ResultsStore(experiment.config.runs_dir())


def prepare_bench(config: ExperimentConfig) -> tuple[Experiment, ResultsStore]:
    """The experiment of ``config``, validated, and its results store; raises an ``InputError``
    (``ConfigError``, ``RegistryError``, ``ResultsError``) before any data."""
    experiment = validated_experiment(config)
    return experiment, open_store(experiment)


def run_bench(
    experiment: Experiment,
    store: ResultsStore,
    out: Any,
    *,
    dry_run: bool = False,
    plugins: tuple[str, ...] = (),
) -> Results | None:
    """Train the grid of ``experiment`` (:func:`fusionzoo.bench.session.run_bench`) and return its runs;
    ``dry_run``: print the grid and a cost estimate, train nothing, return ``None``.

    With ``ddp > 1`` outside torchrun, each run trains on that many processes started here
    (:func:`fusionzoo.launch.ddp.launch_bench`); the results are then those of the whole runs directory."""
    from fusionzoo.bench import session
    from fusionzoo.launch.select import distributed_world

    config = experiment.config
    if dry_run:
        session.dry_run(experiment, store, out)
        return None
    ddp = config.bench.ddp
    if ddp and ddp > 1 and distributed_world() == 1:  # start torchrun's ranks for this grid
        from fusionzoo.launch.ddp import launch_bench

        counts = launch_bench(config, ddp, list(plugins))
        failed = {f"run {i + 1} of the DDP grid": "failed (listed above)" for i in range(counts["failed"])}
        return Results(store.dir, config.metric, failed=failed)
    try:
        outcome = session.run_bench(experiment, store, out, config.bench.threads or 1)
    except KeyboardInterrupt:
        out.print(
            "[yellow]interrupted: the current run was discarded (nothing of it is recorded); finished "
            f"runs are saved in {store.results_path}. Rerun the same command (or call) to resume.[/yellow]"
        )
        raise
    failed = dict(outcome.errors)  # run label -> error line
    labels = {s.run_id: s.label for s in outcome.specs}
    for run_id in outcome.failed:  # run ids: a failed run without an error line still counts, once
        failed.setdefault(labels.get(run_id, run_id), "failed")
    return Results(store.dir, config.metric, frozenset(s.run_id for s in outcome.specs), failed=failed)


def prepare_eval(config: ExperimentConfig, runs_dir: str | Path) -> ResultsStore:
    """The results store of ``runs_dir`` to evaluate with ``config``'s ``[eval]`` protocols/efficiency;
    ``ConfigError`` when there is nothing to evaluate or the cluster does not answer, ``ResultsError``
    when ``runs_dir`` is not a bench's runs directory."""
    from fusionzoo.evaluation.session import build_protocols
    from fusionzoo.launch.select import check_cluster
    from fusionzoo.results.store import ResultsError

    if not config.eval.protocols and not config.eval.efficiency:
        raise ConfigError(
            "nothing to evaluate: give --protocols SPEC,... and/or --efficiency (or an [eval] table)"
        )
    try:
        build_protocols(config.eval.protocols)
    except RegistryError as exc:
        raise ConfigError(f"--protocols / [eval] protocols: {exc}") from None
    store = ResultsStore(Path(runs_dir))
    if not store.results_path.exists():
        raise ResultsError(f"{runs_dir} has no {store.results_path.name}: run fusionzoo bench first")
    check_cluster(config)
    return store


def run_eval(config: ExperimentConfig, store: ResultsStore, out: Any) -> Results:
    """Evaluate the finished runs of ``store`` (:func:`fusionzoo.evaluation.session.run_eval`)."""
    from fusionzoo.evaluation.session import run_eval as evaluate_store

    outcome = evaluate_store(config, store, out)
    return Results(store.dir, config.metric, problems=list(outcome.problems))
