"""``fusionzoo bench``: train a grid of fusions × heads × seeds on the same cached tokens, print a leaderboard.

With no ``--config`` and no ``--dataset`` the quick preset runs (the embedded dataset, the defaults of
``benchmarks/quick.toml``). Flags given on the command line override the preset.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import click

from fusionzoo.cli_common import IntList, PluginSpecList, plugin_option

DATASET_CHOICES = ("synth", "glami1m", "csv")


def source_is_cli(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def _parse_kv(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, Any]:
    from fusionzoo.registry import _parse_value

    out: dict[str, Any] = {}
    for item in values:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} must look like key=value", ctx=ctx, param=param)
        key, value = item.split("=", 1)
        out[key.strip()] = _parse_value(value)
    return out


@click.command("bench")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML preset (e.g. benchmarks/quick.toml); flags given here override it.",
)
@click.option(
    "--fusions",
    type=PluginSpecList("fusion"),
    default=None,
    help="Comma-separated fusion specs, e.g. fluid,film,concat_mlp or 'fluid:gating=false+film'.",
)
@click.option(
    "--heads",
    type=PluginSpecList("head"),
    default=None,
    help="Head specs to pair with every fusion [default: each fusion's natural head, e.g. fluid→moe].",
)
@click.option("--seeds", type=IntList(), default=None, help="Comma-separated integer seeds [default: 0,1,2].")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Training epochs per run.")
@click.option("--dim", type=click.IntRange(min=1), default=None, help="Width D of the fused tokens.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Training batch size.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="AdamW learning rate.")
@click.option(
    "--dataset",
    type=click.Choice(DATASET_CHOICES),
    default=None,
    help="Dataset [default: synth, the embedded GLAMI-format dataset].",
)
@click.option(
    "--data-dir", type=click.Path(file_okay=False), default=None, help="Dataset/cache root directory."
)
@click.option(
    "--data-option",
    "data_options",
    multiple=True,
    callback=_parse_kv,
    metavar="KEY=VALUE",
    help="Extra dataset option (repeatable), e.g. csv=train.csv or size=4000.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Subsample the training split to N rows."
)
@click.option(
    "--mode",
    type=click.Choice(["frozen", "finetune"]),
    default=None,
    help="frozen: cached encoder tokens (default); finetune: encoders in the training graph.",
)
@click.option(
    "--image-encoder", default=None, help="Image encoder spec (timm:NAME) [default: the dataset's]."
)
@click.option("--text-encoder", default=None, help="Text encoder spec (hf:NAME) [default: the dataset's].")
@click.option(
    "--pretrained/--no-pretrained",
    default=None,
    help="Load the encoders' pretrained weights [default: the spec's; --no-pretrained: seeded random init, "
    "needs no download].",
)
@click.option(
    "--out", type=click.Path(), default=None, help="Runs directory [default: runs/<preset or dataset>]."
)
@click.option("--device", default=None, help="auto (default), cpu, cuda, cuda:1, ...")
@click.option(
    "--with-unimodal/--no-unimodal",
    default=None,
    help="Add the image_only and text_only baselines [default: on for the embedded dataset].",
)
@click.option(
    "--loss-weights",
    default=None,
    metavar="NAME=W,...",
    help="λ per loss name, e.g. contrastive=0.333,load_balance=0.333 (ce = classification).",
)
@click.option(
    "--paper-loss", is_flag=True, default=False, help="FLUID's loss: λ = 1/3 for CE and every aux loss."
)
@click.option("--metric", default=None, help="Leaderboard metric [default: test_accuracy].")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads for training [default: 1: the fusion models are small, one thread is fastest and "
    "leaves the other cores free; encoding keeps torch's default].",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the grid, the cache status and a cost estimate; train nothing."
)
@plugin_option
@click.pass_context
def bench(
    ctx: click.Context,
    config_path: str | None,
    fusions: list[str] | None,
    heads: list[str] | None,
    seeds: list[int] | None,
    epochs: int | None,
    dim: int | None,
    batch_size: int | None,
    lr: float | None,
    dataset: str | None,
    data_dir: str | None,
    data_options: dict[str, Any],
    limit: int | None,
    mode: str | None,
    image_encoder: str | None,
    text_encoder: str | None,
    pretrained: bool | None,
    out: str | None,
    device: str | None,
    with_unimodal: bool | None,
    loss_weights: str | None,
    paper_loss: bool,
    metric: str | None,
    threads: int | None,
    dry_run: bool,
    plugins: tuple[str, ...],
) -> None:
    """Train every fusion × head × seed on identical features and print an honest leaderboard.

    \b
    Examples:
      fusionzoo bench --fusions fluid,film,concat_mlp
      fusionzoo bench --config benchmarks/glami1m_table2.toml --data-dir /data
      fusionzoo bench --fusions fluid --heads moe,mlp --seeds 0,1,2,3,4 --dry-run
    """
    from fusionzoo.bench.config import QUICK, BenchConfigError, load_preset
    from fusionzoo.train.config import parse_loss_weights

    try:
        bench_config = load_preset(config_path) if config_path else QUICK.replace()
    except BenchConfigError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param_hint="--config") from exc
    if dataset is not None:
        bench_config.datasets = [dataset]
        if not config_path and dataset != "synth":  # quick defaults are for the embedded dataset
            bench_config.with_unimodal = False
            bench_config.out = f"runs/{dataset}"
    overrides = {
        "fusions": fusions,
        "heads": heads,
        "seeds": seeds,
        "data_dir": data_dir,
        "limit": limit,
        "mode": mode,
        "device": device,
        "with_unimodal": with_unimodal,
        "out": out,
        "metric": metric,
    }
    for key, value in overrides.items():
        if value is not None:
            setattr(bench_config, key, value)
    if any(s < 0 for s in bench_config.seeds):
        raise click.BadParameter("seeds must be integers >= 0", ctx=ctx, param_hint="--seeds")
    bench_config.data = {**bench_config.data, **data_options}
    if image_encoder:
        bench_config.encoders = {**bench_config.encoders, "image": image_encoder}
    if text_encoder:
        bench_config.encoders = {**bench_config.encoders, "text": text_encoder}
    if pretrained is not None:
        bench_config.encoders = {**bench_config.encoders, "pretrained": pretrained}
    train_overrides: dict[str, Any] = {}
    for key, value in (("epochs", epochs), ("dim", dim), ("batch_size", batch_size), ("lr", lr)):
        if value is not None:
            train_overrides[key] = value
    if loss_weights is not None:
        try:
            train_overrides["loss_weights"] = parse_loss_weights(loss_weights)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param_hint="--loss-weights") from exc
    if paper_loss:
        train_overrides["paper_loss"] = True
    bench_config.train = {**bench_config.train, **train_overrides}
    try:
        base = bench_config.run_config()
    except BenchConfigError as exc:
        raise click.UsageError(str(exc), ctx=ctx) from exc
    if not bench_config.metric.startswith(("test_", "val_")):
        bench_config.metric = f"test_{bench_config.metric}"

    from fusionzoo.bench.results import ResultsError, ResultsSchemaError, ResultsStore
    from fusionzoo.bench.runner import build_grid
    from fusionzoo.registry import RegistryError

    try:
        specs = build_grid(bench_config, base)
    except RegistryError as exc:
        raise click.UsageError(str(exc), ctx=ctx) from exc
    out_dir = Path(bench_config.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise click.BadParameter(
            f"{out_dir} is a file, not a directory; pass a directory for the runs",
            ctx=ctx,
            param_hint="--out",
        )
    try:
        store = ResultsStore(out_dir)
    except ResultsSchemaError as exc:
        raise click.ClickException(str(exc)) from exc
    except ResultsError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param_hint="--out") from exc

    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:  # logs and CI: wide enough for the leaderboard
        console = Console(highlight=False, width=160)
    if dry_run:
        _dry_run(console, bench_config, specs, store)
        return
    _run(console, bench_config, specs, store, threads or 1)


def data_options_for(bench_config: Any, dataset: str) -> Any:
    from fusionzoo.bench.prepare import DataOptions

    return DataOptions(
        dataset=dataset,
        data_dir=bench_config.data_dir,
        limit=bench_config.limit,
        mode=bench_config.mode,
        data=dict(bench_config.data),
        encoders=dict(bench_config.encoders),
        device="cuda" if bench_config.device.startswith("cuda") else "cpu",
        freeze_layers=int(bench_config.train.get("freeze_layers", 0)),
    )


def _dry_run(console: Any, bench_config: Any, specs: list[Any], store: Any) -> None:
    from rich.table import Table

    from fusionzoo.bench.flops import peak_matmul_flops
    from fusionzoo.bench.prepare import cache_status
    from fusionzoo.bench.runner import estimate_seconds

    finished = store.finished_ids()
    console.print(
        f"[bold]grid[/bold] from {bench_config.source}: {len(specs)} runs "
        f"({len([s for s in specs if s.run_id in finished])} already finished in {store.dir})"
    )
    statuses = {}
    for dataset in bench_config.datasets:
        status = cache_status(data_options_for(bench_config, dataset))
        statuses[dataset] = status
        console.print(f"[bold]{dataset}[/bold]: dataset {status['dataset']}")
        console.print(
            f"  features in {status['cache_dir']}: "
            + ", ".join(f"{k} {v}" for k, v in status["features"].items())
        )
    peak = peak_matmul_flops(512, seconds=0.3) if any(s["shapes"] for s in statuses.values()) else None
    table = Table(title="runs", title_justify="left")
    for col in ("#", "dataset", "fusion", "head", "seed", "config", "state", "est. time"):
        table.add_column(col)
    total, unknown = 0.0, 0
    for i, spec in enumerate(specs, 1):
        done = spec.run_id in finished
        seconds = 0.0 if done else estimate_seconds(spec, store, statuses[spec.dataset]["shapes"], peak)
        if not done and math.isnan(seconds):
            unknown += 1
        else:
            total += seconds
        table.add_row(
            str(i),
            spec.dataset,
            spec.fusion,
            spec.head,
            str(spec.seed),
            spec.config_hash,
            "finished (skipped)" if done else "to run",
            "-" if done else ("?" if math.isnan(seconds) else f"{seconds:.0f} s"),
        )
    console.print(table)
    todo = len([s for s in specs if s.run_id not in finished])
    estimate = f"about {total / 60:.1f} min of training for {todo - unknown} runs"
    if unknown:
        estimate += (
            f"; {unknown} runs without an estimate (no earlier run and the features are not cached yet)"
        )
    console.print(f"cost estimate: {estimate}. Nothing was trained (--dry-run).")


def _run(console: Any, bench_config: Any, specs: list[Any], store: Any, threads: int = 1) -> None:
    import torch
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from fusionzoo.bench.prepare import PrepareError, prepare_data
    from fusionzoo.bench.runner import run_grid

    finished = store.finished_ids()
    needed = sorted({s.dataset for s in specs if s.run_id not in finished}, key=bench_config.datasets.index)
    data: dict[str, Any] = {}
    try:
        for dataset in needed:  # before the progress bars: encoding shows its own
            console.print(f"[bold]preparing[/bold] {dataset} ({bench_config.mode} mode)")
            data[dataset] = prepare_data(data_options_for(bench_config, dataset), console=console)
    except PrepareError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted while preparing the data; nothing was trained. "
            "Rerun the same command: finished cache chunks are reused.[/yellow]"
        )
        sys.exit(130)

    progress = Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with progress:
            outcome = run_grid(specs, store, data.__getitem__, progress=progress, console=progress.console)
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted: the current run was discarded (nothing of it is recorded); finished runs are "
            f"saved in {store.results_path}. Rerun the same command to resume.[/yellow]"
        )
        sys.exit(130)
    finally:
        torch.set_num_threads(default_threads)
    print_leaderboard(console, store, specs, bench_config.metric)
    console.print(
        f"ran {len(outcome.ran)} runs in {outcome.seconds:.0f} s ({len(outcome.skipped)} skipped, "
        f"{len(outcome.failed)} failed, {len(outcome.diverged)} diverged)"
    )
    console.print(f"results: {store.results_path}")


def _fmt_params(n: Any) -> str:
    try:
        n = int(n)
    except (TypeError, ValueError):
        return "-"
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def _fmt_p(p: float) -> str:
    if math.isnan(p):
        return "-"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _mean_ci(mean: float, ci: float, scale: float = 100.0) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean * scale:.2f}" + (f" ± {ci * scale:.2f}" if not math.isnan(ci) else " (1 seed)")


def print_leaderboard(console: Any, store: Any, specs: list[Any], metric: str) -> Any:
    """Leaderboard of the grid's runs (not other runs of the same directory); returns the summary table."""
    from rich.table import Table

    from fusionzoo.bench.config import UNIMODAL
    from fusionzoo.bench.stats import summarize

    frame = store.load()
    ids = {s.run_id for s in specs}
    frame = frame[frame["run_id"].astype(str).isin(ids)]
    if not len(frame):
        console.print("no results yet")
        return None
    if metric not in frame.columns:
        available = ", ".join(sorted(c for c in frame.columns if c.startswith("test_")))
        console.print(f"[red]metric '{metric}' is not in the results; available: {available}[/red]")
        metric = "test_accuracy" if "test_accuracy" in frame.columns else metric
        if metric not in frame.columns:
            return None
    summary = summarize(frame, metric, predictions=store.predictions)
    f1 = (
        summarize(frame, "test_macro_f1")
        if "test_macro_f1" in frame.columns and metric != "test_macro_f1"
        else None
    )
    for dataset, part in summary.groupby("dataset", sort=False):
        title = f"leaderboard · {dataset} · {metric} (%) mean ± 95% CI over seeds"
        table = Table(title=title, title_justify="left")
        for col in (
            "#",
            "fusion",
            "head",
            "seeds",
            metric.removeprefix("test_"),
            "macro F1",
            "vs best",
            "params",
            "train s",
        ):
            table.add_column(col, justify="right" if col not in ("fusion", "head") else "left")
        for _, row in part.iterrows():
            f1_text = "-"
            if f1 is not None:
                match = f1[
                    (f1["dataset"] == dataset)
                    & (f1["fusion"] == row["fusion"])
                    & (f1["head"] == row["head"])
                    & (f1["config_hash"] == row["config_hash"])
                ]
                if len(match):
                    f1_text = _mean_ci(float(match["mean"].iloc[0]), float(match["ci"].iloc[0]))
            if row["is_best"]:
                versus = "best"
            elif row["test"]:
                mark = " *" if row["significant"] else ""
                versus = f"{_fmt_p(row['p_adjusted'])}{mark}"
            else:
                versus = "-"
            seeds = (
                f"{row['n']}"
                + (f" ({row['failed']} failed)" if row["failed"] else "")
                + (f" ({row['diverged']} diverged)" if row["diverged"] else "")
            )
            style = "dim" if row["fusion"].split(":")[0] in UNIMODAL else None
            table.add_row(
                str(row["rank"]),
                row["fusion"],
                row["head"],
                seeds,
                _mean_ci(row["mean"], row["ci"]),
                f1_text,
                versus,
                _fmt_params(row["params"]),
                "-" if math.isnan(row["train_time"]) else f"{row['train_time']:.1f}",
                style=style,
            )
        console.print(table)
        console.print(
            "[dim]* significantly worse than the best (α = 0.05, Holm-adjusted; paired t-test over "
            "shared seeds, McNemar on pooled test predictions when only one seed is shared). "
            "Dim rows: unimodal baselines.[/dim]"
        )
        uni = part[part["fusion"].str.split(":").str[0].isin(UNIMODAL)]
        multi = part[~part["fusion"].str.split(":").str[0].isin(UNIMODAL)]
        if len(uni) and len(multi) and not (uni["mean"].isna().all() or multi["mean"].isna().all()):
            gap = (multi["mean"].max() - uni["mean"].max()) * 100
            console.print(
                f"best multimodal − best unimodal: {gap:+.2f} points ({metric.removeprefix('test_')})"
            )
    return summary
