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
    from fusionzoo.api.sessions import console

    return console()


def validated_experiment(flags: dict[str, Any], config_path: str | None) -> tuple[Any, Any]:
    """The experiment of the flags, validated before any data is touched (exit 2 on a bad input), and
    its results store."""
    from fusionzoo.api.sessions import open_store, validated_experiment

    config = config_from_flags(flags, config_path)
    with checking_input():  # a dataset option, a plugin refusing its hyperparameters, ...
        experiment = validated_experiment(config)
    with about("--out"):
        return experiment, open_store(experiment)


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
    from fusionzoo.api.sessions import run_bench

    experiment, store = validated_experiment(flags, config_path)
    try:
        results = run_bench(experiment, store, console_for_output(), dry_run=dry_run, plugins=plugins)
    except KeyboardInterrupt:  # run_bench said what is kept
        sys.exit(130)
    if results is not None and results.failed:
        if results.run_ids is None:  # ddp: the ranks listed the failures
            raise click.ClickException(f"{len(results.failed)} run(s) failed (listed above)")
        raise click.ClickException(
            f"{len(results.failed)} of {len(results.run_ids)} runs failed (listed above); the others are "
            "recorded. Fix the cause and rerun: only the failed and missing runs are trained."
        )
