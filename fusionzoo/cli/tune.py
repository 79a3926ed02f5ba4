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
from typing import Any

import click

from fusionzoo.cli.common import IntList, PluginSpecList, plugin_option
from fusionzoo.cli.errors import Command, checking_input
from fusionzoo.cli.options import config_from_flags, experiment_options, flag

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
    from fusionzoo.tune.session import run_study, show_space, study_settings

    console = Console(highlight=False, stderr=False)
    config = config_from_flags(options, config_path, TUNE_FLAGS)
    with checking_input():
        if options["show_space"] is not None:
            show_space(console, config, options["show_space"])
            return
        settings = study_settings(console, config, options, plugins)
        check_cluster(config)
    try:
        run_study(console, settings, config, options)
    except KeyboardInterrupt:  # run_study said what is kept
        sys.exit(130)
