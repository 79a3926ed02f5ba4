"""``fusionzoo bench``: train a grid of fusions × heads × seeds on the same cached tokens, print a leaderboard.

With no ``--config`` the quick preset runs (the embedded dataset); flags override the preset. Everything
that can be wrong in the flags or the preset is found before any data is generated or encoded, and the
command exits non-zero when any requested run failed.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from fusionzoo.cli.common import plugin_option
from fusionzoo.cli.errors import Command, about, checking_input
from fusionzoo.cli.options import config_from_flags, experiment_options

BENCH_FLAGS = (
    "fusions",
    "heads",
    "seeds",
    "epochs",
    "dim",
    "batch_size",
    "lr",
    "dataset",
    "datasets",
    "split_seeds",
    "train_fractions",
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
    "with_unimodal",
    "with_probe",
    "loss_weights",
    "paper_loss",
    "metric",
    "threads",
    "cache_dir",
    "text_max_length",
    "image_tokens",
    "text_tokens",
    "on_bad_image",
    "launcher",
    "report",
    "mlflow",
    "tune_trials",
    "train_protocols",
    "eval",
    "protocols",
    "efficiency",
    "jobs",
    "batch_seeds",
    "ray_address",
    "ddp",
    "distill_from",
    "distill_t",
    "distill_alpha",
)


def console_for_output() -> Any:
    import io
    import os

    from rich.console import Console

    if int(os.environ.get("RANK", "0")) > 0:  # torchrun: rank 0 speaks for every rank
        return Console(file=io.StringIO())
    console = Console(highlight=False)
    if not console.is_terminal:  # logs and CI: wide enough for the leaderboard
        console = Console(highlight=False, width=160)
    return console


def validated_experiment(flags: dict[str, Any], config_path: str | None) -> Any:
    """The experiment of the flags, validated before any data is touched (exit 2 on a bad input)."""
    from fusionzoo.bench.checks import validate_bench
    from fusionzoo.experiment import Experiment

    config = config_from_flags(flags, config_path)
    experiment = Experiment(config)
    with checking_input():  # a dataset option, a plugin refusing its hyperparameters, ...
        validate_bench(experiment)
    return experiment


def open_store(experiment: Any) -> Any:
    from fusionzoo.results.store import ResultsStore

    with about("--out"):
        return ResultsStore(experiment.config.runs_dir())


@click.command("bench", cls=Command)
@experiment_options(*BENCH_FLAGS)
@click.option(
    "--dry-run", is_flag=True, help="Print the grid, the cache status and a cost estimate; train nothing."
)
@plugin_option
def bench(config_path: str | None, dry_run: bool, plugins: tuple[str, ...], **flags: Any) -> None:
    """Train every fusion × head × seed on identical features and print an honest leaderboard.

    \b
    Examples:
      fusionzoo bench --fusions fluid,film,concat_mlp
      fusionzoo bench --config glami1m_table2 --data-dir /data
      fusionzoo bench --fusions fluid --heads moe,mlp --seeds 0,1,2,3,4 --dry-run
      fusionzoo bench --datasets 'synth:size=800+synth:size=800,synth_seed=1' --split-seeds 0,1
      fusionzoo bench --config offline          # the packaged suite (no network)
    """
    from fusionzoo.bench.session import dry_run as show_dry_run
    from fusionzoo.bench.session import run_bench
    from fusionzoo.launch.select import distributed_world

    experiment = validated_experiment(flags, config_path)
    store = open_store(experiment)
    console = console_for_output()
    ddp = experiment.config.bench.ddp
    if ddp and ddp > 1 and distributed_world() == 1 and not dry_run:  # start torchrun's ranks for this grid
        from fusionzoo.launch.ddp import launch_bench

        counts = launch_bench(experiment.config, ddp, list(plugins))
        if counts["failed"]:
            raise click.ClickException(f"{counts['failed']} run(s) failed (listed above)")
        return
    try:
        if dry_run:
            show_dry_run(experiment, store, console)
            return
        outcome = run_bench(experiment, store, console, experiment.config.bench.threads or 1)
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted: the current run was discarded (nothing of it is recorded); finished "
            f"runs are saved in {store.results_path}. Rerun the same command to resume.[/yellow]"
        )
        sys.exit(130)
    if outcome.failed:
        raise click.ClickException(
            f"{len(outcome.failed)} of {len(outcome.specs)} runs failed (listed above); the others are "
            "recorded. Fix the cause and rerun: only the failed and missing runs are trained."
        )
