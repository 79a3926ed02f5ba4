"""The experiment flags, declared once and shared by ``bench``, ``tune`` and ``eval``.

Each flag names the config field it overrides (``--epochs`` → ``train.epochs``, ``--fusions`` →
``bench.fusions``, ``--data-option k=v`` → ``data.k`` ...). A command adds the flags it takes with
:func:`experiment_options`; :func:`config_from_flags` then loads the preset (``--config``: a TOML path
or a packaged preset name; none: the quick preset, or the dataset's preset for ``--dataset``) and
applies every given flag in one merge (:meth:`fusionzoo.config.ExperimentConfig.with_overrides`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

from fusionzoo.cli.common import CommaList, FloatList, IntList, PluginSpecList, TrainProtocolList
from fusionzoo.run_settings import JOBS_HELP, parse_jobs

__all__ = ["FLAGS", "Flag", "config_from_flags", "experiment_options", "flag", "parse_key_values"]


def parse_key_values(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, Any]:
    from fusionzoo.registry import _parse_value

    out: dict[str, Any] = {}
    for item in values:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} must look like key=value", ctx=ctx, param=param)
        key, value = item.split("=", 1)
        out[key.strip()] = _parse_value(value)
    return out


def _image_tokens(ctx: click.Context, param: click.Parameter, value: str | None) -> str | int | None:
    if value is None:
        return None
    from fusionzoo.encoders.errors import EncoderError
    from fusionzoo.encoders.image import parse_token_selection

    try:
        return parse_token_selection(value)
    except EncoderError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def _launcher(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from fusionzoo.registry import RegistryError, validate_spec

    if value is None:
        return None
    try:
        return validate_spec("launcher", value)
    except RegistryError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


@dataclass(frozen=True)
class Flag:
    """One command-line flag: its click declaration and the config field it sets."""

    name: str
    decls: tuple[str, ...]
    path: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def option(self) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return click.option(*self.decls, self.name, **{"default": None, **self.kwargs})


def preset_default(field: str) -> str:
    """The shown default of a ``[train]`` field: the quick preset's value (what runs without ``--config``),
    and the real-data preset's (``--dataset NAME``) when it differs. Read from the preset files, so
    ``--help`` needs no torch import and never drifts from the presets."""
    from fusionzoo.config import DEFAULT_PRESET, resolve_preset, tomllib

    quick, real = (
        tomllib.loads(resolve_preset(n)[0]).get("train", {}).get(field) for n in (DEFAULT_PRESET, "real")
    )
    other = "" if real == quick else f"; {real} with --dataset NAME"
    return f"{quick}, {DEFAULT_PRESET} preset{other}"  # click shows it as [default: (...)]


class JobsParam(click.ParamType):
    """``--jobs N|auto`` (:func:`fusionzoo.run_settings.parse_jobs`)."""

    name = "jobs"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        try:
            return parse_jobs(value)
        except ValueError as exc:
            self.fail(str(exc).removeprefix("--jobs "), param, ctx)


JOBS = JobsParam()


def flag(name: str, path: str, *decls: str, **kwargs: Any) -> Flag:
    """A :class:`Flag` whose option is ``--name-with-dashes`` unless ``decls`` are given."""
    return Flag(name, decls or (f"--{name.replace('_', '-')}",), path, kwargs)


FLAGS: dict[str, Flag] = {
    f.name: f
    for f in (
        flag("fusions", "bench.fusions", type=PluginSpecList("fusion"), metavar="SPECS",
              help="Comma-separated fusion specs, e.g. fluid,film,concat_mlp, 'fluid:gating=false+film' or "
              "'fluid@mlp' (a pinned head)."),
        flag("heads", "bench.heads", type=PluginSpecList("head"), metavar="SPECS",
              help="Head specs to pair with every fusion [default: each fusion's natural head, e.g. fluid→moe]."),
        flag("seeds", "bench.seeds", type=IntList(), help="Comma-separated integer seeds [default: 0,1,2]."),
        flag("epochs", "train.epochs", type=click.IntRange(min=1), help="Training epochs per run.",
              show_default=preset_default("epochs")),
        flag("dim", "train.dim", type=click.IntRange(min=1), help="Width D of the fused tokens.",
              show_default=preset_default("dim")),
        flag("batch_size", "train.batch_size", type=click.IntRange(min=1), help="Training batch size.",
              show_default=preset_default("batch_size")),
        flag("lr", "train.lr", type=click.FloatRange(min=0, min_open=True), help="AdamW learning rate.",
              show_default=preset_default("lr")),
        flag("dataset", "bench.datasets", metavar="NAME",
              help="Dataset: any registered backend (fusionzoo list datasets) [default: synth, the embedded one]."),
        flag("datasets", "bench.datasets", type=PluginSpecList("dataset"), metavar="SPEC+SPEC+...",
              help="A suite: several dataset specs joined by +, e.g. 'synth:size=800+synth:size=800,synth_seed=1' "
              "or 'csv:csv=a.csv+glami1m:root=/data' (options override [data] for that dataset; "
              "image_encoder= / text_encoder= set its encoders); the leaderboard adds a cross-dataset summary "
              "(docs/suites.md)."),
        flag("split_seeds", "bench.split_seeds", type=IntList(), metavar="S,S,...",
              help="Re-draw the train/validation split with each seed (the test split stays fixed): another "
              "source of variance beside --seeds, in every interval [default: the dataset's own split]."),
        flag("train_fractions", "bench.train_fractions", type=FloatList(), metavar="F,F,...",
              help="Learning curve: also train on these nested stratified fractions of the training rows, "
              "e.g. 0.1,0.3,1 (same validation and test splits); the report plots accuracy against "
              "training size [default: 1, every row]."),
        flag("data_dir", "bench.data_dir", type=click.Path(file_okay=False), help="Dataset/cache root directory."),
        flag("data_options", "data", "--data-option", multiple=True, callback=parse_key_values,
              metavar="KEY=VALUE", default=(),
              help="Dataset option (repeatable), e.g. csv=train.csv or size=4000 (fusionzoo list datasets)."),
        flag("limit", "bench.limit", type=click.IntRange(min=1), help="Subsample the training split to N rows."),
        flag("mode", "bench.mode", type=click.Choice(["frozen", "finetune"]),
              help="frozen: cached encoder tokens (default); finetune: encoders in the training graph."),
        flag("image_encoder", "encoders.image", metavar="SPEC",
              help="Image encoder: timm:NAME, timm:NAME@FILE or timm:/folder [default: the dataset's]."),
        flag("text_encoder", "encoders.text", metavar="SPEC",
              help="Text encoder: hf:NAME or hf:/folder [default: the dataset's]."),
        flag("pretrained", "encoders.pretrained", "--pretrained/--no-pretrained",
              help="Load the encoders' pretrained weights [default: the spec's; --no-pretrained: seeded random "
              "init, needs no download]."),
        flag("out", "bench.out", type=click.Path(), help="Runs directory [default: runs/<preset or dataset>]."),
        flag("device", "bench.device", help="auto (default), cpu, cuda, cuda:1, ..."),
        flag("precision", "train.precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
             help="Training and evaluation precision: bf16 autocast with fp32 weights and losses (CPUs with "
             "AVX512-BF16/AMX, CUDA GPUs), fp16 (CUDA only) or fp32. The resolved precision is part of the "
             "run identity [default: auto: bf16 on CUDA, fp32 on a CPU]."),
        flag("compile", "train.compile", type=click.Choice(["auto", "on", "off"]),
             help="Run each training/eval step's model through torch.compile [default: auto: on where the "
             "measured saving pays for the compile time (docs/scale.md)]."),
        flag("with_unimodal", "bench.with_unimodal", "--with-unimodal/--no-unimodal",
              help="Add the image_only and text_only baselines [default: on for the embedded dataset]."),
        flag("with_probe", "bench.with_probe", "--with-probe/--no-probe",
             help="Add the linear-probe floor (logistic regression on pooled frozen features: image, text, "
             "both; C chosen on validation) [default: on for real datasets, off for the embedded one]."),
        flag("loss_weights", "train.loss_weights", metavar="NAME=W,...",
              help="λ per loss name, e.g. contrastive=0.333,load_balance=0.333 (ce = classification)."),
        flag("paper_loss", "train.paper_loss", is_flag=True, default=False,
              help="FLUID's loss: λ = 1/3 for CE, the contrastive and the load-balance loss."),
        flag("metric", "bench.metric", help="Leaderboard metric: any metric column [default: test_accuracy]."),
        flag("threads", "bench.threads", type=click.IntRange(min=1),
              help="CPU threads for training [default: 1: the fusion models are small, one thread is fastest "
              "and leaves the other cores free; encoding keeps torch's default]."),
        flag("cache_dir", "bench.cache_dir", type=click.Path(file_okay=False),
              help="Feature cache folder [default: $FUSIONZOO_CACHE, else <data dir>/features]."),
        flag("text_max_length", "encoders.text_max_length", type=click.IntRange(min=1),
              help="Truncate texts to N tokens [default: the text encoder's maximum]."),
        flag("image_tokens", "encoders.image_tokens", metavar="all|cls|mean|N", callback=_image_tokens,
              help="Image tokens to keep: all, the [CLS] token, their mean, or N pooled patch tokens (a smaller "
              "cache that keeps a token fusion's input; docs/scale.md) [default: all]."),
        flag("text_tokens", "encoders.text_tokens", type=click.Choice(["all", "cls", "mean"]),
              help="Text tokens to keep [default: all]."),
        flag("num_workers", "encoders.num_workers", type=click.IntRange(min=0),
              help="Image decoding workers while encoding [default: auto]."),
        flag("on_bad_image", "data.on_bad_image", type=click.Choice(["skip", "fail"]),
              help="Missing/unreadable images: drop the row (counted, warned) or stop [default: skip]."),
        flag("tune_trials", "bench.tune_trials", type=click.IntRange(min=1), metavar="N",
              help="A fair tuned comparison: tune every fusion × head of the grid with the same Optuna budget "
              "(N trials, the [tune] sampler/seed/metric, validation split only), then train each best "
              "configuration over the seeds (docs/benchmarking.md)."),
        flag("launcher", "bench.launcher", metavar="SPEC", callback=_launcher,
              help="Where runs execute: local (this machine: one after the other, or --jobs N at once in a "
              "process pool), ray (a Ray cluster), submitit "
              "(SLURM) or any registered launcher (fusionzoo list launchers) [default: local]."),
        flag("report", "bench.report", "--report/--no-report",
              help="Write the HTML report of the runs (fusionzoo report) to <runs dir>/report.html at the end."),
        flag("mlflow", "bench.mlflow", metavar="URI",
              help="Also log every run to MLflow (e.g. sqlite:///runs/mlflow.db) as children of one bench run; "
              "needs the mlflow extra."),
        flag("train_protocols", "bench.train_protocols", type=TrainProtocolList(), metavar="SPEC@LEVEL,...",
              help="Train-time protocol axis, e.g. 'missing_image@0.3' or 'label_noise:mode=uniform,rates=0;0.2;0.4' "
              "(a spec without @LEVEL runs each of its levels); each is part of the run identity."),
        flag("protocols", "eval.protocols", type=PluginSpecList("protocol"), metavar="SPECS",
              help="Robustness protocols to evaluate, e.g. 'missing_image:rates=0;0.5;1,missing_text' "
              "(the protocols: docs/evaluation.md) [default: the config's [eval] protocols]."),
        flag("efficiency", "eval.efficiency", "--efficiency/--no-efficiency",
              help="Measure the efficiency metrics (params, GFLOPs, latency, throughput, memory) once per "
              "configuration."),
        flag("eval", "eval.suites", type=CommaList(what="suite"), metavar="robustness,efficiency",
              help="After training, evaluate the finished runs: robustness ([eval] protocols, or the default "
              "suite) and/or efficiency (fusionzoo eval on this runs directory)."),
        flag("jobs", "bench.jobs", type=JOBS, metavar="N|auto", help=JOBS_HELP),
        flag("batch_seeds", "bench.batch_seeds", "--batch-seeds/--no-batch-seeds",
             help="Train the seeds of one configuration together as one stacked model (torch.func.vmap): "
             "each seed keeps its init, data order and dropout draws, results equal one-at-a-time training "
             "up to float rounding; a fusion or head that cannot be stacked trains alone (the row says "
             "why) [default: on when the runs train on CUDA, off on CPU, where it measured no faster; local and "
             "pool launchers; docs/scale.md]."),
        flag("ray_address", "bench.ray_address", metavar="ADDR",
             help="--launcher ray: the cluster to join, e.g. 10.0.0.1:6379 or auto [default: $RAY_ADDRESS, "
             "else a Ray instance on this machine]."),
        flag("ddp", "bench.ddp", type=click.IntRange(min=1), metavar="N",
             help="Finetune mode: train each run on N processes with DistributedDataParallel (one GPU each, "
             "else CPU with gloo); same as running the command under torchrun --nproc-per-node N."),
        flag("distill_from", "bench.distill_from", metavar="RUNS_DIR[:FUSION]",
             help="Knowledge distillation: train the --fusions as students of a finished teacher (the mean of "
             "its seeds' logits) from another runs directory, with α·CE + (1−α)·T²·KL (Hinton et al. 2015); "
             ":FUSION picks the teacher when RUNS_DIR holds several configurations."),
        flag("distill_t", "train.distill_t", type=click.FloatRange(min=0, min_open=True), metavar="T",
             help="--distill-from: the temperature T [default: 4]."),
        flag("distill_alpha", "train.distill_alpha", type=click.FloatRange(0, 1), metavar="α",
             help="--distill-from: the weight α of the hard-label CE (1 − α on the teacher's soft targets) "
             "[default: 0.5]."),
    )
}  # fmt: skip

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    default=None,
    metavar="PRESET|FILE.toml",
    help="Preset: a packaged name (quick, glami1m_table1, ...) or a TOML file; flags given here override it.",
)


def experiment_options(
    *names: str, table: dict[str, Flag] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add ``--config`` and the named flags (of :data:`FLAGS`, or ``table``) to a click command."""
    flags = {**FLAGS, **(table or {})}

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        for name in reversed(names):
            func = flags[name].option()(func)
        return CONFIG_OPTION(func)

    return decorator


def config_from_flags(
    flags: dict[str, Any], config_path: str | None = None, table: dict[str, Flag] | None = None
) -> Any:
    """The preset of ``config_path`` with every given flag of ``flags`` applied (one merge).

    Without ``--config``, ``--dataset NAME`` starts from that dataset's preset (its backend's
    ``default_preset``: ``quick`` for the embedded dataset, ``real`` for every other) and runs into
    ``runs/NAME``. Raises ``click.UsageError`` naming a wrong value.
    """
    from fusionzoo.config import ConfigError, apply_options, starting_config

    dataset = flags.get("dataset")
    try:
        config = starting_config(config_path, dataset)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--config") from None
    table = {**FLAGS, **(table or {})}
    values = dict(flags)
    if values.get("loss_weights") is not None:
        from fusionzoo.train.config import parse_loss_weights

        try:
            values["loss_weights"] = parse_loss_weights(values["loss_weights"])
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--loss-weights") from None
    try:
        return apply_options(config, values, {n: f.path for n, f in table.items()}, config_path is not None)
    except ConfigError as exc:
        raise click.UsageError(str(exc).replace(config.source + ": ", "command line: ", 1)) from None
