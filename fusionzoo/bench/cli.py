"""``fusionzoo bench``: train a grid of fusions × heads × seeds on the same cached tokens, print a leaderboard.

With no ``--config`` the quick preset runs (the embedded dataset); flags override the preset. Everything
that can be wrong in the flags or the preset is found before any data is generated or encoded, and the
command exits non-zero when any requested run failed.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from fusionzoo.cli_common import plugin_option
from fusionzoo.cli_options import config_from_flags, experiment_options

BENCH_FLAGS = (
    "fusions",
    "heads",
    "seeds",
    "epochs",
    "dim",
    "batch_size",
    "lr",
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
    "ray_address",
    "ddp",
)


def console_for_output() -> Any:
    from fusionzoo.api.sessions import console

    return console()


def validated_experiment(flags: dict[str, Any], config_path: str | None) -> tuple[Any, Any]:
    """The experiment of the flags, validated before any data is touched (exit 2 on a bad input), and
    its results store."""
    from fusionzoo.api.sessions import prepare_bench
    from fusionzoo.bench.results import ResultsError, ResultsSchemaError
    from fusionzoo.config import ConfigError

    try:
        return prepare_bench(config_from_flags(flags, config_path))
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    except ResultsSchemaError as exc:
        raise click.ClickException(str(exc)) from None
    except ResultsError as exc:
        raise click.BadParameter(str(exc), param_hint="--out") from None


@click.command("bench")
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
    """
    from fusionzoo.api.sessions import run_bench
    from fusionzoo.bench.tracking import TrackingError
    from fusionzoo.io import DiskFullError
    from fusionzoo.launch.ray import RayConnectError
    from fusionzoo.prepare import PrepareError
    from fusionzoo.tune import TuneError
    from fusionzoo.tune.space import SearchSpaceError

    experiment, store = validated_experiment(flags, config_path)
    try:
        results = run_bench(experiment, store, console_for_output(), dry_run=dry_run, plugins=plugins)
    except (PrepareError, DiskFullError, TrackingError, TuneError, SearchSpaceError, RayConnectError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:  # run_bench said what is kept
        sys.exit(130)
    if results is not None and results.failed:
        if results.run_ids is None:  # ddp: the ranks listed the failures
            raise click.ClickException(f"{len(results.failed)} run(s) failed (listed above)")
        raise click.ClickException(
            f"{len(results.failed)} of {len(results.run_ids)} runs failed (listed above); the others are "
            "recorded. Fix the cause and rerun: only the failed and missing runs are trained."
        )
