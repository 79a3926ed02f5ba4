"""``fusionzoo encode``: run the encoders once per split and fill the feature cache bench and tune read.

The dataset and encoder flags are the experiment flags of ``fusionzoo bench`` (declared once in
:mod:`fusionzoo.cli.options`: ``--dataset``, ``--data-dir``, ``--data-option``, ``--limit``,
``--image-encoder``, ``--text-encoder``, ``--pretrained/--no-pretrained``, ``--cache-dir``,
``--image-tokens``, ...), and ``--config`` takes the same presets, so ``fusionzoo encode`` with the
flags of a later ``fusionzoo bench`` writes exactly the cache entries that bench reuses. The data goes
through the same steps as bench (:func:`fusionzoo.prepare.resolve_inputs`, then
:func:`fusionzoo.prepare.encode_features`). With ``--jobs N`` (N > 1) or ``--launcher ray`` each split
is cut into chunk-range shards, each a task of the ``[run]`` launcher (the warm process pool, Ray; see
:mod:`fusionzoo.encoders.sharded`); this process commits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import click

from fusionzoo.cli.common import plugin_option
from fusionzoo.cli.errors import Command
from fusionzoo.cli.options import JOBS, config_from_flags, experiment_options, flag

ENCODE_FLAGS = {
    f.name: f
    for f in (
        flag("encode_batch_size", "encoders.batch_size", "--batch-size", type=click.IntRange(min=1),
             help="Items per encoder forward pass [default: 64, or the preset's [encoders] batch_size]."),
        flag("launcher", "bench.launcher", metavar="local|ray",
             help="local: encode here (--jobs N > 1: N shards at once in worker processes); ray: shards of "
             "each split as Ray tasks (one GPU each when present), committed here [default: local]."),
        flag("jobs", "bench.jobs", type=JOBS, metavar="N|auto",
             help="Shards encoded at once, each on --threads threads [default: auto = local: one encode in "
             "this process on every core; ray: one shard per GPU of the cluster, else per --threads CPUs]."),
        flag("threads", "bench.threads", type=click.IntRange(min=1),
             help="CPUs per shard with --jobs N or --launcher ray [default: 1]."),
    )
}  # fmt: skip
EXPERIMENT_FLAGS = (
    "dataset",
    "data_dir",
    "data_options",
    "limit",
    "image_encoder",
    "text_encoder",
    "pretrained",
    "cache_dir",
    "text_max_length",
    "image_tokens",
    "text_tokens",
    "num_workers",
    "on_bad_image",
    "device",
    "encode_batch_size",
    "launcher",
    "jobs",
    "ray_address",
    "threads",
)
SPLIT_NAMES = ("train", "val", "test")


def _renamed_option(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> None:
    if values:
        raise click.UsageError(
            f"--option {values[0]} was renamed --data-option {values[0]} (the flag bench and tune take, so "
            "the features land in the cache they read)",
            ctx=ctx,
        )


def _splits(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    names = [s.strip() for s in value.split(",") if s.strip()]
    bad = [s for s in names if s not in SPLIT_NAMES]
    if bad or not names:
        raise click.BadParameter(
            f"unknown split(s) {', '.join(bad) or '(none)'}; use train,val,test", ctx=ctx, param=param
        )
    return names


@click.command("encode", cls=Command)
@experiment_options(*EXPERIMENT_FLAGS, table=ENCODE_FLAGS)
@click.option(
    "--splits",
    "split_names",
    default="train,val,test",
    show_default=True,
    callback=_splits,
    help="Splits to encode.",
)
@click.option(
    "--verify-cache",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "full", "size"]),
    help="Integrity check of an existing entry: hash every chunk (full), sizes only, or full up to 8 GiB.",
)
@click.option("--probe", is_flag=True, help="Afterwards, print linear-probe accuracies (image, text, both).")
@click.option(
    "--option", "renamed_option", multiple=True, hidden=True, expose_value=False, callback=_renamed_option
)
@plugin_option
def encode(
    config_path: str | None,
    split_names: list[str],
    verify_cache: str,
    probe: bool,
    plugins: tuple[str, ...],
    **flags: Any,
) -> None:  # fmt: skip
    """Encode a dataset's splits with an image and a text encoder into the token-feature cache.

    Each split is encoded once: a later encode, bench or tune with the same dataset, options and
    encoders reuses the cache (and says so); an interrupted run continues where it stopped.

    \b
    Examples:
      fusionzoo encode --dataset synth --probe
      fusionzoo encode --dataset glami1m --data-dir /data --image-encoder timm:vit_base_patch16_224
      fusionzoo encode --config glami1m_table1 --data-dir /data     # what that bench preset trains on
    """
    from rich.console import Console

    from fusionzoo.data.base import DataError
    from fusionzoo.encoders.errors import EncoderError
    from fusionzoo.experiment import Experiment
    from fusionzoo.io import DiskFullError
    from fusionzoo.launch.ray import RayConnectError
    from fusionzoo.launch.select import check_cluster
    from fusionzoo.prepare import PrepareError, encode_features, resolve_inputs

    config = config_from_flags(flags, config_path, table=ENCODE_FLAGS)
    experiment = Experiment(config)
    for dataset in config.bench.datasets:
        try:
            experiment.backend(dataset).check_options(dict(config.data))
        except ValueError as exc:  # an unknown dataset or option: before anything is loaded
            raise click.UsageError(str(exc)) from None
    from fusionzoo.registry import parse_spec
    from fusionzoo.run_settings import run_settings

    run = run_settings(config)
    launcher = parse_spec(run.launcher)[0]
    if launcher not in ("local", "pool", "ray"):
        raise click.UsageError(f"--launcher {run.launcher}: encode runs on local, pool or ray")
    try:
        check_cluster(run)
    except ValueError as exc:  # ConfigError: a malformed or unreachable --ray-address
        raise click.UsageError(str(exc)) from None
    console = Console(stderr=True, soft_wrap=True)
    for dataset in config.bench.datasets:
        options = experiment.data_options(dataset)
        options.mode = "frozen"
        if config.bench.device != "auto":  # auto: where bench encodes (Experiment.data_options)
            options.device = config.bench.device
        try:
            inputs = resolve_inputs(options)
            image, text = inputs.image_encoder, inputs.text_encoder
            console.print(
                f"image encoder {image.spec}: {image.num_tokens} tokens × {image.out_dim}; "
                f"text encoder {text.spec}: ≤ {text.max_length} tokens × {text.out_dim}; "
                f"cache {options.cache_root()}"
            )
            with contextlib.ExitStack() as stack:
                encode_entry = None
                if launcher != "local" or (run.fixed_jobs or 1) > 1:
                    encode_entry = stack.enter_context(_shards(run, inputs, console))
                    inputs.options.device = "cpu"  # this process only commits: the shards encode
                features = encode_features(
                    inputs, split_names, verify=verify_cache, console=console, encode_entry=encode_entry
                )
        except (PrepareError, EncoderError, DataError, DiskFullError, RayConnectError) as exc:
            raise click.ClickException(str(exc)) from None
        _report(features, split_names, probe)


@contextlib.contextmanager
def _shards(run: Any, inputs: Any, console: Any) -> Iterator[Any]:
    """The ``encode_entry`` of ``--jobs N`` / ``--launcher ray``: each split's shards as tasks of the
    ``[run]`` launcher; the encoders travel once per worker process."""
    from fusionzoo.encoders.sharded import LauncherShards, ShardedEncoder
    from fusionzoo.launch.select import launcher_for
    from fusionzoo.registry import parse_spec

    threads = run.task_threads
    with contextlib.ExitStack() as stack:
        shards = run.fixed_jobs
        if parse_spec(run.launcher)[0] == "ray":  # one connection for every split and phase
            import ray

            from fusionzoo.launch.ray import cluster_slots, connect

            if connect(run.ray_address):
                stack.callback(ray.shutdown)
            shards = shards or cluster_slots(threads)
        shards = shards or 1
        launcher = launcher_for(run.model_copy(update={"jobs": shards}), shards)
        said: set[str] = set()

        def say(message: str) -> None:
            if message not in said:
                said.add(message)
                console.print(message)

        runner = LauncherShards(launcher, inputs.image_encoder, inputs.text_encoder, say=say)
        sharded = ShardedEncoder(runner, shards)
        name = parse_spec(run.launcher)[0]
        console.print(f"{name}: {sharded.shards} shard(s) per split and phase, {threads} CPU(s) each")
        yield sharded


def _report(features: dict[str, Any], split_names: list[str], probe: bool) -> None:
    from fusionzoo.io import human_bytes

    for name, split in features.items():
        info = split.info
        state = "reused" if info.get("reused") else ("resumed" if info.get("resumed") else "encoded")
        click.echo(
            f"{name}: {len(split)} rows, image {(len(split), split.num_image_tokens, split.image_dim)} from "
            f"{split.num_images} distinct images, text tokens {tuple(split.text_tokens.shape)} of "
            f"{split.num_texts} distinct texts, {human_bytes(info.get('bytes', 0))}, {state}, "
            f"{info.get('cache_path')}"
        )
    if probe:
        from fusionzoo.encoders.probe import linear_probe

        evaluation = "test" if "test" in features else split_names[-1]
        scores = linear_probe(features[split_names[0]], features[evaluation])
        click.echo(
            f"linear probe ({split_names[0]} → {evaluation}): image {scores['image']:.3f}, text "
            f"{scores['text']:.3f}, image+text {scores['concat']:.3f} (gain over best single modality "
            f"{scores['gain']:+.3f})"
        )
