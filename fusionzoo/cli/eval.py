"""``fusionzoo eval RUNS_DIR``: robustness protocols and efficiency metrics on saved checkpoints.

Evaluates the finished runs of a runs directory without retraining and writes ``robustness.parquet``
and ``efficiency.parquet`` next to its ``results.parquet``; a rerun evaluates only what is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from fusionzoo.cli.common import plugin_option
from fusionzoo.cli.errors import Command, about
from fusionzoo.cli.options import config_from_flags, experiment_options, flag

EVAL_FLAGS = ("protocols", "efficiency", "device", "threads", "jobs", "launcher", "ray_address", "data_dir",
              "data_options", "limit", "dataset")  # fmt: skip
EVAL_TABLE = {
    "threads": flag(
        "threads", "bench.threads", type=click.IntRange(min=1),
        help="CPU threads per evaluation job: the protocols' forward passes and the efficiency timings "
        "(latency, throughput; recorded with each efficiency row) [default: 1].",
    ),
}  # fmt: skip


@click.command("eval", cls=Command)
@click.argument("runs_dir", type=click.Path(file_okay=False, exists=True))
@experiment_options(*EVAL_FLAGS, table=EVAL_TABLE)
@plugin_option
def eval_cmd(runs_dir: str, config_path: str | None, plugins: tuple[str, ...], **flags: Any) -> None:
    """Evaluate the finished runs in RUNS_DIR under robustness protocols and/or measure their efficiency.

    \b
    Examples:
      fusionzoo eval runs/quick --protocols missing_image,missing_text --efficiency
      fusionzoo eval runs/quick --protocols 'missing_image:rates=0;0.5;1,feature_noise:modality=image'
      fusionzoo eval runs/quick --protocols 'image_corruption:corruption=motion_blur,text_typos:kind=swap'
      fusionzoo eval runs/quick --protocols missing_image --jobs 2          # 2 checkpoints at once
      fusionzoo eval runs/big --protocols feature_noise --launcher ray --ray-address HEAD:6379

    The data of each run is rebuilt from what the bench recorded in RUNS_DIR/inputs/ (the --config,
    --data-dir and --data-option flags are used only for runs of older fusionzoo versions that lack it).
    """
    from fusionzoo.api.sessions import console, prepare_eval, run_eval
    from fusionzoo.results.store import ResultsError

    config = config_from_flags(flags, config_path, EVAL_TABLE)
    with about("RUNS_DIR", ResultsError):  # nothing to evaluate, a bad RUNS_DIR, the cluster: before any work
        store = prepare_eval(config, Path(runs_dir))
    results = run_eval(config, store, console())
    if results.problems:
        raise click.ClickException(
            f"{len(results.problems)} group(s) of runs could not be evaluated (listed above)"
        )
