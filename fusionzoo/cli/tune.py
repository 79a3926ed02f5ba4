"""``fusionzoo tune``: an Optuna study over one fusion + head on the benchmark's data.

The dataset/encoder/budget flags are the experiment flags ``fusionzoo bench`` takes (declared once in
:mod:`fusionzoo.cli.options`), so both commands train on identical data the same way; the tuning flags
set the ``[tune]`` table of the same config. ``--config`` takes any preset (a bench preset works as is)
plus ``[tune]``, ``[space]`` (overrides/fixes, see ``fusionzoo.tune.space``) and ``[pruner]``.

A study remembers what defines its objective (data fingerprint, epochs, metric, fixed hyperparameters,
search space, training semantics); resuming it with any of those changed is refused, naming the change.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from fusionzoo import registry
from fusionzoo.cli.common import IntList, PluginSpecList, plugin_option
from fusionzoo.cli.errors import Command, checking_input
from fusionzoo.cli.options import config_from_flags, experiment_options, flag

DEFAULT_RUNS_DIR = "runs/tune"
EXPERIMENT_FLAGS = (
    "epochs",
    "dim",
    "batch_size",
    "dataset",
    "data_dir",
    "data_options",
    "limit",
    "mode",
    "image_encoder",
    "text_encoder",
    "pretrained",
    "out",
    "device",
    "precision",
    "compile",
    "loss_weights",
    "paper_loss",
    "cache_dir",
    "text_max_length",
    "image_tokens",
    "text_tokens",
    "on_bad_image",
    "jobs",
    "launcher",
    "ray_address",
    "threads",
)


def _objectives(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    from fusionzoo.tune.objective import resolve_objectives

    if value is None:
        return None
    with checking_input(param.get_error_hint(ctx)):
        return [o.key for o in resolve_objectives(None, value)]


def _metric(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from fusionzoo.tune.objective import resolve_objective

    if value is None:
        return None
    with checking_input(param.get_error_hint(ctx)):
        return resolve_objective(value).key


def _one_spec(ctx: click.Context, param: click.Parameter, value: list[str] | None) -> str | None:
    if value is None:
        return None
    if len(value) != 1:
        raise click.BadParameter(f"give exactly one spec, got {', '.join(value)}", ctx=ctx, param=param)
    return value[0]


TUNE_FLAGS = {
    f.name: f
    for f in (
        flag("fusion", "tune.fusion", "--fusion", "-f", type=PluginSpecList("fusion"), callback=_one_spec,
             help="The fusion to tune (one spec; hyperparameters given here are fixed), e.g. fluid."),
        flag("head", "tune.head", type=PluginSpecList("head"), callback=_one_spec,
             help="The head [default: the fusion's natural head, e.g. fluid → moe]."),
        flag("trials", "tune.trials", type=click.IntRange(min=1),
             help="Target total number of trials of the study [default: 50]; a rerun adds only the remainder."),
        flag("timeout", "tune.timeout", type=click.FloatRange(min=0, min_open=True),
             help="Stop starting trials after this many seconds (per worker)."),
        flag("storage", "tune.storage", metavar="URL",
             help="sqlite:///f.db, postgresql+psycopg2://user:pw@host/db, journal:PATH or memory "
             "[default: sqlite in the runs dir]."),
        flag("study", "tune.study", help="Study name [default: <fusion>__<head>__<metric>]."),
        flag("seed", "tune.seed", type=click.IntRange(min=0),
             help="Seed of the sampler; every trial trains with seed 10000 + this, never an evaluation "
             "seed [default: 0]."),
        flag("metric", "tune.metric", callback=_metric,
             help="Validation metric to maximise [default: val_macro_f1]."),
        flag("objectives", "tune.objectives", callback=_objectives, metavar="M1,M2",
             help="Multi-objective mode (no pruning), e.g. accuracy,latency or macro_f1,params."),
        flag("pruner", "tune.pruner", type=click.Choice(["median", "hyperband", "successive_halving", "none"]),
             help="Pruner of unpromising trials (val metric reported each epoch) [default: median]."),
        flag("sampler", "tune.sampler", type=click.Choice(["tpe", "random", "gp"]),
             help="Sampler, seeded with --seed [default: tpe]."),
        flag("workers", "tune.workers", type=click.IntRange(min=1),
             help="Worker processes on this machine, all on the same study [default: 1]."),
        flag("export_seeds", "tune.export_seeds", type=IntList(),
             help="Seeds of the exported preset [default: 0,1,2]."),
        flag("heartbeat_interval", "tune.heartbeat_interval", type=click.IntRange(min=1),
             help="RDB storages: seconds between a running trial's heartbeats [default: 60]."),
        flag("grace_period", "tune.grace_period", type=click.IntRange(min=1),
             help="RDB storages: a trial without heartbeat for this long is failed and retried "
             "[default: 2 × interval]."),
        flag("max_retry", "tune.max_retry", type=click.IntRange(min=0),
             help="How often a dead worker's trial is retried [default: 3]."),
    )
}  # fmt: skip


@click.command("tune", cls=Command)
@experiment_options(*TUNE_FLAGS, *EXPERIMENT_FLAGS, table=TUNE_FLAGS)
@click.option(
    "--export",
    "export_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the best config as a `fusionzoo bench --config` preset.",
)
@click.option(
    "--export-trial",
    type=click.IntRange(min=0),
    default=None,
    help="Export this trial instead of the best one (e.g. a point of the Pareto front).",
)
@click.option("--plots", is_flag=True, help="Save optimization history and parameter importances (PNG).")
@click.option(
    "--show-test",
    is_flag=True,
    help="Also show the best trials' test metric (stored with every trial, never used to select one).",
)
@click.option(
    "--show-space",
    "show_space",
    type=PluginSpecList("fusion"),
    default=None,
    callback=_one_spec,
    metavar="FUSION",
    help="Print the merged search space of FUSION (with --head, --config) and exit.",
)
@click.option(
    "--worker-index",
    type=click.IntRange(min=0),
    default=0,
    help="This worker's index when several machines share a study (seeds its sampler).",
)
@click.option(
    "--data-factory",
    default=None,
    metavar="MODULE:FUNC",
    help="Train on the data this function returns instead of --dataset (advanced).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or tables (worker processes).")
@plugin_option
def tune(config_path: str | None, plugins: tuple[str, ...], **options: Any) -> None:
    """Tune one fusion + head with Optuna: seeded sampler, pruning, resumable studies, many workers.

    \b
    Examples:
      fusionzoo tune --show-space fluid --head moe
      fusionzoo tune --fusion fluid --trials 50 --export best.toml && fusionzoo bench --config best.toml
      fusionzoo tune --fusion film --trials 40 --workers 2 --storage journal:runs/tune/optuna.journal
      fusionzoo tune --fusion fluid --storage postgresql+psycopg2://me:pw@db:5432/optuna --study fluid-a
      fusionzoo tune --fusion fluid --objectives accuracy,latency --trials 30
    """
    from rich.console import Console

    from fusionzoo.launch.select import check_cluster

    console = Console(highlight=False, stderr=False)
    config = config_from_flags(options, config_path, TUNE_FLAGS)
    with checking_input():
        if options["show_space"] is not None:
            _show_space(console, config, options["show_space"])
            return
        settings = _settings(config, options, plugins)
        check_cluster(config)
    _run(console, settings, config, options)


def _show_space(console: Any, config: Any, fusion: str) -> None:
    from fusionzoo.tune.space import build_space

    space = build_space(
        fusion,
        config.tune.head,
        mode=config.bench.mode,
        overrides=config.space or None,
        overrides_source=config.source,
    )
    console.print(space.table())
    searched = len(space.searched())
    console.print(
        f"{searched} searched, {len(space.params) - searched} fixed. Override or fix any of them in the "
        "\\[space] table of a --config TOML."
    )


def _settings(config: Any, options: dict[str, Any], plugins: tuple[str, ...]) -> Any:
    """The picklable TuneSettings of a validated config (nothing is loaded or trained)."""
    from fusionzoo.tune.study import settings_from_config

    settings = settings_from_config(
        config,
        runs_dir=options.get("out") or DEFAULT_RUNS_DIR,
        data_factory=options["data_factory"],
        plugins=plugins or (),
        worker_index=options["worker_index"],
    )
    tune_config = config.tune
    seed = settings.base_config["seed"]
    if options["export_path"] and seed in tune_config.export_seeds:
        from fusionzoo.config import ConfigError
        from fusionzoo.tune.study import TUNING_SEED_OFFSET

        raise ConfigError(
            f"--export-seeds {','.join(map(str, tune_config.export_seeds))} contain {seed}, the seed every "
            f"trial trains with ({TUNING_SEED_OFFSET} + --seed {tune_config.seed}): the exported benchmark's "
            "seeds must not repeat the trial that won on its own luck"
        )
    if len(tune_config.objectives) > 1 and tune_config.pruner != "none" and options.get("pruner"):
        click.echo(f"--pruner {tune_config.pruner} is ignored: Optuna cannot prune multi-objective studies")
    return settings


def _run(console: Any, settings: Any, config: Any, options: dict[str, Any]) -> None:
    import optuna

    from fusionzoo.launch.resources import torch_threads
    from fusionzoo.launch.select import launcher_for
    from fusionzoo.run_settings import run_settings
    from fusionzoo.tune import TuneError
    from fusionzoo.tune.budget import budget_counts
    from fusionzoo.tune.display import TuneDisplay, print_summary
    from fusionzoo.tune.storage import resolve_storage
    from fusionzoo.tune.study import build_settings_space, open_study
    from fusionzoo.tune.worker import launch_workers, load_training_data, resolve_data, run_worker

    quiet = options["quiet"]
    run = run_settings(config)
    workers = run.fixed_jobs or config.tune.workers  # tasks at once: tuning workers (auto: --workers)
    on_ray = registry.parse_spec(run.launcher)[0] == "ray"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = build_settings_space(settings)
    storage = resolve_storage(
        settings.storage,
        settings.runs_dir,
        heartbeat_interval=settings.heartbeat_interval,
        grace_period=settings.grace_period,
        max_retry=settings.max_retry,
    )
    if (workers > 1 or on_ray) and not storage.shared:
        raise click.UsageError(
            "--workers/--jobs/--launcher ray need a storage other processes can open (not 'memory')"
        )
    if not quiet:
        console.print(f"[bold]loading[/bold] {settings.data_options.get('dataset', 'data')}")
    fingerprint, data = resolve_data(settings)  # the data identity, before the study is opened
    settings = settings.replace(data_fingerprint=fingerprint)
    study = open_study(settings, storage, space)
    before = budget_counts(study.get_trials(deepcopy=False))
    objectives = settings.objective_specs()
    if not quiet:
        console.print(
            f"[bold]study[/bold] {study.study_name} in {storage.display}: {before.finished} finished, "
            f"target {settings.trials} trials; {'objectives' if len(objectives) > 1 else 'metric'} "
            + ", ".join(f"{o.key} ({o.direction})" for o in objectives)
            + f"; sampler {settings.sampler} (seed {settings.seed}), "
            + (f"pruner {settings.pruner}" if len(objectives) == 1 else "no pruning (multi-objective)")
        )
        if storage.kind == "sqlite" and workers > 1:
            console.print(
                "[yellow]several workers on SQLite: fine for a few on one machine; prefer journal:PATH "
                "(one machine) or PostgreSQL (many machines)[/yellow]"
            )
    if data is None and before.counted < settings.trials:
        data = load_training_data(settings, console=None if quiet else console)  # fills the cache once
    threads = run.task_threads  # as bench: every trial trains at --threads (default 1)
    started = time.monotonic()
    try:
        with TuneDisplay(console, settings, study, quiet) as display, torch_threads(threads):
            if on_ray or workers > 1:
                launcher = launcher_for(run.model_copy(update={"jobs": workers}), workers)
                codes = launch_workers(settings, workers, launcher=launcher, poll=display.refresh)
                bad = [i for i, code in enumerate(codes) if code != 0]
                if bad:
                    after = budget_counts(study.get_trials(deepcopy=False))
                    raise TuneError(
                        f"worker(s) {', '.join(map(str, bad))} exited with an error (exit codes {codes}; "
                        f"their tracebacks are above); the study has {after.finished} finished trials "
                        f"of {settings.trials}. Rerun the same command to continue it."
                    )
            else:
                run_worker(
                    settings,
                    data=data,
                    storage=storage,
                    on_trial=display.on_trial,
                    progress=display.on_event if not quiet else None,
                )
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted: the running trial is marked failed and does not count; rerun the same "
            "command to continue the study up to its target[/yellow]"
        )
        sys.exit(130)
    after = budget_counts(study.get_trials(deepcopy=False))
    if quiet:
        return
    print_summary(
        console, study, settings, storage, before, after, time.monotonic() - started, options["show_test"]
    )
    if options["export_path"]:
        _export(console, study, settings, config, options)
    if options["plots"]:
        from fusionzoo.tune.export import save_plots

        files, notes = save_plots(study, Path(settings.runs_dir) / "plots")
        for note in notes:
            console.print(f"[dim]plots: {note}[/dim]")
        if files:
            console.print("plots: " + ", ".join(str(f) for f in files))


def _export(console: Any, study: Any, settings: Any, config: Any, options: dict[str, Any]) -> None:
    from fusionzoo.tune.export import export_bench_preset

    bench_table = {
        "datasets": list(config.bench.datasets),
        "data_dir": config.bench.data_dir,
        "limit": config.bench.limit,
        "device": config.bench.device,
        "data": dict(config.data),
        "encoders": config.encoders.model_dump(exclude_none=True),
    }
    out = f"runs/tuned/{study.study_name}".replace(":", "_").replace(",", "_").replace("=", "-")
    trial = export_bench_preset(
        study,
        options["export_path"],
        bench=bench_table,
        seeds=config.tune.export_seeds,
        trial_number=options["export_trial"],
        out=out,
        note=(
            f"tuned on the data of --data-factory {settings.data_factory}; [bench] names the command's "
            "dataset settings"
            if settings.data_factory
            else None
        ),
    )
    console.print(
        f"exported trial {trial.number} to {options['export_path']}: fusionzoo bench --config "
        f"{options['export_path']}"
    )
