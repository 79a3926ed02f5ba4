"""``fusionzoo tune``: an Optuna study over one fusion + head on the benchmark's data.

The dataset/encoder/epoch flags are the ``fusionzoo bench`` options themselves (the same
``click.Option`` objects), so both commands train on identical data the same way. ``--config`` takes a
tune TOML: the bench preset tables (``[bench]``, ``[data]``, ``[encoders]``, ``[train]``; so a bench
preset works as is) plus ``[space]`` (overrides/fixes, see ``fusionzoo.tune.space``), ``[pruner]``
(pruner keyword arguments) and ``[tune]`` (defaults for this command's options, e.g. ``trials = 40``).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from fusionzoo.cli_common import IntList, PluginSpecList, plugin_option

TUNE_TABLES = ("space", "pruner", "tune")
BENCH_TABLES = ("bench", "data", "encoders", "train", "paper")
# bench options reused as they are (dataset, encoders, training budget, where the runs go)
BENCH_FLAGS = (
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
    "loss_weights",
    "paper_loss",
)
# [tune] keys -> option names of this command
TUNE_KEYS = (
    "fusion",
    "head",
    "trials",
    "timeout",
    "storage",
    "study",
    "seed",
    "metric",
    "objectives",
    "pruner",
    "sampler",
    "workers",
    "heartbeat_interval",
    "grace_period",
    "max_retry",
    "export_seeds",
)
DEFAULT_RUNS_DIR = "runs/tune"


def _bench_flags(command: click.Command) -> click.Command:
    """Append the ``fusionzoo bench`` options named in :data:`BENCH_FLAGS` to ``command``."""
    from fusionzoo.bench.cli import bench

    by_name = {p.name: p for p in bench.params}
    missing = [n for n in BENCH_FLAGS if n not in by_name]
    if missing:  # pragma: no cover - guards against a renamed bench option
        raise RuntimeError(f"fusionzoo bench no longer has the option(s) {', '.join(missing)}")
    command.params.extend(by_name[n] for n in BENCH_FLAGS)
    return command


def _objectives(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    from fusionzoo.tune.study import TuneError, resolve_objectives

    if value is None:
        return None
    try:
        return [o.key for o in resolve_objectives(None, value)]
    except TuneError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def _metric(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from fusionzoo.tune.study import TuneError, resolve_objective

    if value is None:
        return None
    try:
        return resolve_objective(value).key
    except TuneError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


@_bench_flags
@click.command("tune")
@click.option(
    "--fusion",
    "-f",
    type=PluginSpecList("fusion"),
    default=None,
    help="The fusion to tune (one spec; hyperparameters given here are fixed), e.g. fluid.",
)
@click.option(
    "--head",
    type=PluginSpecList("head"),
    default=None,
    help="The head [default: the fusion's natural head, e.g. fluid → moe].",
)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=None,
    help="Target total number of trials of the study [default: 50]; a rerun adds only the remainder.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop starting trials after this many seconds (per worker).",
)
@click.option(
    "--storage",
    default=None,
    metavar="URL",
    help="sqlite:///f.db, postgresql+psycopg2://user:pw@host/db, journal:PATH or memory "
    "[default: sqlite in the runs dir].",
)
@click.option("--study", "study", default=None, help="Study name [default: <fusion>__<head>__<metric>].")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    help="Seed of the sampler and of every trial's training [default: 0].",
)
@click.option(
    "--metric", default=None, callback=_metric, help="Validation metric to maximise [default: val_macro_f1]."
)
@click.option(
    "--objectives",
    default=None,
    callback=_objectives,
    metavar="M1,M2",
    help="Multi-objective mode (no pruning), e.g. accuracy,latency or macro_f1,params.",
)
@click.option(
    "--pruner",
    type=click.Choice(["median", "hyperband", "none"]),
    default=None,
    help="Pruner of unpromising trials (val metric reported each epoch) [default: median].",
)
@click.option(
    "--sampler",
    type=click.Choice(["tpe", "random", "gp"]),
    default=None,
    help="Sampler, seeded with --seed [default: tpe].",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Tune TOML: [space], [pruner], [tune] plus the bench preset tables.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes on this machine, all on the same study [default: 1].",
)
@click.option(
    "--export",
    "export_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the best config as a `fusionzoo bench --config` preset.",
)
@click.option(
    "--export-seeds", type=IntList(), default=None, help="Seeds of the exported preset [default: 0,1,2]."
)
@click.option(
    "--export-trial",
    type=click.IntRange(min=0),
    default=None,
    help="Export this trial instead of the best one (e.g. a point of the Pareto front).",
)
@click.option("--plots", is_flag=True, help="Save optimization history and parameter importances (PNG).")
@click.option(
    "--show-space",
    "show_space",
    type=PluginSpecList("fusion"),
    default=None,
    metavar="FUSION",
    help="Print the merged search space of FUSION (with --head, --config) and exit.",
)
@click.option(
    "--heartbeat-interval",
    type=click.IntRange(min=1),
    default=None,
    help="RDB storages: seconds between a running trial's heartbeats [default: 60].",
)
@click.option(
    "--grace-period",
    type=click.IntRange(min=1),
    default=None,
    help="RDB storages: a trial without heartbeat for this long is failed and retried "
    "[default: 2 × interval].",
)
@click.option(
    "--max-retry",
    type=click.IntRange(min=0),
    default=None,
    help="How often a dead worker's trial is retried [default: 3].",
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
@click.pass_context
def tune(ctx: click.Context, **options: Any) -> None:
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

    from fusionzoo.tune.space import SearchSpaceError
    from fusionzoo.tune.study import TuneError

    console = Console(highlight=False, stderr=False)
    try:
        _tune(ctx, console, options)
    except (TuneError, SearchSpaceError) as exc:
        raise click.ClickException(str(exc)) from None


def _given(ctx: click.Context, name: str) -> bool:
    from fusionzoo.bench.cli import source_is_cli

    return source_is_cli(ctx, name)


def _read_config(ctx: click.Context, path: str | None) -> tuple[dict[str, Any], Any]:
    """(the tune tables, the BenchConfig of the bench tables) of ``--config``."""
    from fusionzoo.bench.config import QUICK, BenchConfigError, load_preset
    from fusionzoo.tune.space import load_toml

    if path is None:
        return {}, QUICK.replace()
    data = load_toml(path)
    unknown = sorted(set(data) - set(TUNE_TABLES) - set(BENCH_TABLES))
    if unknown:
        raise click.BadParameter(
            f"{path}: unknown table(s) {', '.join(unknown)}; expected {', '.join(TUNE_TABLES + BENCH_TABLES)}",
            ctx=ctx,
            param_hint="--config",
        )
    tables = {k: data[k] for k in TUNE_TABLES if k in data}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise click.BadParameter(f"{path}: [{name}] must be a table", ctx=ctx, param_hint="--config")
    bench_tables = {k: data[k] for k in BENCH_TABLES if k in data}
    if not bench_tables:
        return tables, QUICK.replace(source=str(path))
    import tomli_w

    # the bench tables go through the bench's own preset loader (same validation, same defaults)
    with tempfile.TemporaryDirectory() as tmp:
        preset = Path(tmp) / Path(path).name
        preset.write_text(tomli_w.dumps(bench_tables))
        try:
            bench_config = load_preset(preset)
        except BenchConfigError as exc:
            raise click.BadParameter(
                str(exc).replace(str(preset), str(path)), ctx=ctx, param_hint="--config"
            ) from None
    bench_config.source = str(path)
    return tables, bench_config


def _option(
    ctx: click.Context, options: dict[str, Any], tune_table: dict[str, Any], name: str, default: Any
) -> Any:
    """A command option: the command line wins, then the TOML's [tune] table, then ``default``."""
    if options.get(name) is not None and (_given(ctx, name) or name not in tune_table):
        return options[name]
    if name in tune_table:
        value = tune_table[name]
        if name == "objectives" and isinstance(value, list):
            value = ",".join(map(str, value))
        param = next((p for p in ctx.command.params if p.name == name), None)
        if param is not None and param.callback is not None and isinstance(value, str):
            return param.callback(ctx, param, value)
        if param is not None and value is not None:
            try:
                return param.type.convert(value, param, ctx)
            except click.BadParameter as exc:
                raise click.BadParameter(
                    f"[tune] {name}: {exc.message}", ctx=ctx, param_hint="--config"
                ) from None
        return value
    return default


def _bench_config(ctx: click.Context, options: dict[str, Any], bench_config: Any) -> Any:
    """Apply the bench flags to the BenchConfig exactly as ``fusionzoo bench`` does."""
    from fusionzoo.bench.config import BenchConfigError
    from fusionzoo.train.config import parse_loss_weights

    if options["dataset"] is not None:
        bench_config.datasets = [options["dataset"]]
    for key in ("data_dir", "limit", "mode", "device"):
        if options[key] is not None:
            setattr(bench_config, key, options[key])
    if len(bench_config.datasets) != 1:
        raise click.UsageError(
            f"a study tunes on one dataset; {bench_config.source} names {', '.join(bench_config.datasets)} "
            "(pick one with --dataset)",
            ctx=ctx,
        )
    bench_config.data = {**bench_config.data, **(options["data_options"] or {})}
    if options["image_encoder"]:
        bench_config.encoders = {**bench_config.encoders, "image": options["image_encoder"]}
    if options["text_encoder"]:
        bench_config.encoders = {**bench_config.encoders, "text": options["text_encoder"]}
    if options["pretrained"] is not None:
        bench_config.encoders = {**bench_config.encoders, "pretrained": options["pretrained"]}
    train = dict(bench_config.train)
    for key in ("epochs", "dim", "batch_size"):
        if options[key] is not None:
            train[key] = options[key]
    if options["loss_weights"] is not None:
        try:
            train["loss_weights"] = parse_loss_weights(options["loss_weights"])
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param_hint="--loss-weights") from exc
    if options["paper_loss"]:
        train["paper_loss"] = True
    bench_config.train = train
    try:
        bench_config.run_config()
    except BenchConfigError as exc:
        raise click.UsageError(str(exc), ctx=ctx) from exc
    return bench_config


def _tune(ctx: click.Context, console: Any, options: dict[str, Any]) -> None:
    from fusionzoo.tune.study import TuneSettings

    tables, bench_config = _read_config(ctx, options["config_path"])
    tune_table = dict(tables.get("tune", {}))
    unknown = sorted(set(tune_table) - set(TUNE_KEYS))
    if unknown:
        raise click.BadParameter(
            f"{options['config_path']}: [tune] unknown key(s) {', '.join(unknown)}; valid: {', '.join(TUNE_KEYS)}",
            ctx=ctx,
            param_hint="--config",
        )

    def opt(name: str, default: Any = None) -> Any:
        return _option(ctx, options, tune_table, name, default)

    space_source = f"{options['config_path']}" if options["config_path"] else "config"
    head = _single(ctx, opt("head"), "--head")
    if options["show_space"] is not None:
        from fusionzoo.tune.space import build_space

        fusion = _single(ctx, options["show_space"], "--show-space")
        mode = options["mode"] or bench_config.mode
        space = build_space(
            fusion, head, mode=mode, overrides=tables.get("space") or None, overrides_source=space_source
        )
        console.print(space.table())
        searched = len(space.searched())
        console.print(
            f"{searched} searched, {len(space.params) - searched} fixed. Override or fix any of them in the "
            "\\[space] table of a --config TOML."
        )
        return
    fusion = _single(ctx, opt("fusion"), "--fusion")
    if fusion is None:
        raise click.UsageError(
            "--fusion is required (or --show-space FUSION to print a search space)", ctx=ctx
        )
    bench_config = _bench_config(ctx, options, bench_config)
    from fusionzoo.bench.cli import data_options_for

    metric = opt("metric", "val_macro_f1")
    objectives = opt("objectives") or []
    pruner = opt("pruner", "median")
    if objectives and len(objectives) > 1 and _given(ctx, "pruner") and pruner != "none":
        console.print(
            f"[yellow]--pruner {pruner} is ignored: Optuna cannot prune multi-objective studies[/yellow]"
        )
    runs_dir = options["out"] or DEFAULT_RUNS_DIR
    settings = TuneSettings(
        fusion=fusion,
        head=head,
        trials=int(opt("trials", 50)),
        timeout=opt("timeout"),
        storage=opt("storage"),
        study_name=opt("study"),
        seed=int(opt("seed", 0)),
        metric=metric,
        objectives=list(objectives),
        pruner=pruner,
        sampler=opt("sampler", "tpe"),
        runs_dir=runs_dir,
        base_config=bench_config.run_config(seed=int(opt("seed", 0))).to_dict(),
        data_options=dataclasses.asdict(data_options_for(bench_config, bench_config.datasets[0])),
        data_factory=options["data_factory"],
        space_overrides=dict(tables.get("space", {})),
        space_source=space_source,
        pruner_options=dict(tables.get("pruner", {})),
        plugins=list(options["plugins"] or ()),
        heartbeat_interval=opt("heartbeat_interval", 60),
        grace_period=opt("grace_period"),
        max_retry=opt("max_retry", 3),
        worker_index=options["worker_index"],
    )
    workers = int(opt("workers", 1))
    export_seeds = opt("export_seeds") or [0, 1, 2]
    bench_table = {
        "datasets": list(bench_config.datasets),
        "data_dir": bench_config.data_dir,
        "limit": bench_config.limit,
        "device": bench_config.device,
        "data": dict(bench_config.data),
        "encoders": dict(bench_config.encoders),
    }
    _run(console, settings, workers, options, bench_table, export_seeds)


def _single(ctx: click.Context, specs: list[str] | str | None, hint: str) -> str | None:
    if specs is None:
        return None
    if isinstance(specs, str):
        return specs
    if len(specs) != 1:
        raise click.BadParameter(f"give exactly one spec, got {', '.join(specs)}", ctx=ctx, param_hint=hint)
    return specs[0]


# ------------------------------------------------------------------------------------------------- run
def _run(
    console: Any,
    settings: Any,
    workers: int,
    options: dict[str, Any],
    bench_table: dict[str, Any],
    export_seeds: list[int],
) -> None:
    import optuna

    from fusionzoo.tune.study import (
        budget_counts,
        build_settings_space,
        launch_workers,
        open_study,
        resolve_storage,
        run_worker,
    )

    quiet = options["quiet"]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = build_settings_space(settings)
    storage = resolve_storage(
        settings.storage,
        settings.runs_dir,
        heartbeat_interval=settings.heartbeat_interval,
        grace_period=settings.grace_period,
        max_retry=settings.max_retry,
    )
    if workers > 1 and not storage.shared:
        raise click.UsageError("--workers needs a storage other processes can open (not 'memory')")
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
    data = None
    if settings.data_factory is None and before.counted < settings.trials:
        data = _prepare(console, settings, quiet)  # once, before any worker: the cache is filled here
    started = time.monotonic()
    try:
        if workers > 1:
            with _Display(console, settings, study, quiet) as display:
                codes = launch_workers(settings, workers, poll=display.refresh)
            bad = [i for i, code in enumerate(codes) if code != 0]
            if bad:
                console.print(
                    f"[red]worker(s) {', '.join(map(str, bad))} exited with an error (codes {codes})[/red]"
                )
        else:
            with _Display(console, settings, study, quiet) as display:
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
    _summary(console, study, settings, storage, before, after, time.monotonic() - started)
    if options["export_path"]:
        from fusionzoo.tune.export import export_bench_preset

        out = f"runs/tuned/{study.study_name}".replace(":", "_").replace(",", "_").replace("=", "-")
        trial = export_bench_preset(
            study,
            options["export_path"],
            bench=bench_table,
            seeds=export_seeds,
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
            f"exported trial {trial.number} to {options['export_path']}: "
            f"fusionzoo bench --config {options['export_path']}"
        )
    if options["plots"]:
        from fusionzoo.tune.export import save_plots

        files, notes = save_plots(study, Path(settings.runs_dir) / "plots")
        for note in notes:
            console.print(f"[dim]plots: {note}[/dim]")
        if files:
            console.print("plots: " + ", ".join(str(f) for f in files))


def _prepare(console: Any, settings: Any, quiet: bool) -> Any:
    from fusionzoo.bench.prepare import DataOptions, PrepareError, prepare_data

    options = DataOptions(**settings.data_options)
    if not quiet:
        console.print(f"[bold]preparing[/bold] {options.dataset} ({options.mode} mode)")
    try:
        return prepare_data(options, console=console, progress=not quiet)
    except PrepareError as exc:
        raise click.ClickException(str(exc)) from exc


class _Display:
    """Rich progress: the trial budget (done/target, best so far) and a transient per-trial epoch bar."""

    def __init__(self, console: Any, settings: Any, study: Any, quiet: bool) -> None:
        self.console = console
        self.settings = settings
        self.study = study
        self.quiet = quiet
        self.progress: Any = None
        self.task: Any = None
        self.trial_task: Any = None

    def __enter__(self) -> _Display:
        if self.quiet:
            return self
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.progress.__enter__()
        self.task = self.progress.add_task("trials", total=self.settings.trials)
        self.refresh()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.refresh()
            self.progress.__exit__(*exc)

    def refresh(self) -> None:
        if self.progress is None:
            return
        from fusionzoo.tune.study import budget_counts

        counts = budget_counts(self.study.get_trials(deepcopy=False))
        self.progress.update(
            self.task, completed=min(counts.finished, self.settings.trials), description=self._best()
        )

    def _best(self) -> str:
        from fusionzoo.tune.study import best_trials

        try:
            best = best_trials(self.study)
        except Exception:  # a storage hiccup must not end the display
            best = []
        if not best:
            return "trials · best: -"
        if len(self.study.directions) > 1:
            return f"trials · Pareto front: {len(best)} trial(s)"
        key = self.settings.objective_specs()[0].key
        return f"trials · best {key} {best[0].value:.4f} (#{best[0].number})"

    def on_trial(self, study: Any, trial: Any) -> None:
        self.refresh()

    def on_event(self, event: dict[str, Any]) -> None:
        if self.progress is None:
            return
        if event["event"] == "start":
            if self.trial_task is not None:
                self.progress.remove_task(self.trial_task)
            self.trial_task = self.progress.add_task(
                f"  trial {event['trial']}: epoch 0/{event['epochs']}", total=event["epochs"]
            )
        elif event["event"] == "epoch" and self.trial_task is not None:
            val = event.get("val", math.nan)
            self.progress.update(
                self.trial_task,
                completed=event["epoch"],
                description=f"  trial {event['trial']}: epoch {event['epoch']}/{event['epochs']} "
                f"val {event.get('metric', '')} {val:.4f}",
            )


def _summary(
    console: Any, study: Any, settings: Any, storage: Any, before: Any, after: Any, seconds: float
) -> None:
    from rich.markup import escape
    from rich.table import Table

    from fusionzoo.tune.study import best_trials

    objectives = settings.objective_specs()
    multi = len(objectives) > 1
    best = best_trials(study)
    shown = best if multi else best[:5]
    title = f"Pareto front of {study.study_name}" if multi else f"best trials of {study.study_name}"
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    for o in objectives:
        table.add_column(f"{o.key} ({'max' if o.direction == 'maximize' else 'min'})", justify="right")
    if not multi:
        table.add_column("test " + objectives[0].key.removeprefix("val_"), justify="right")
    table.add_column("fusion")
    table.add_column("head")
    table.add_column("lr", justify="right")
    table.add_column("epochs", justify="right")
    for trial in shown:
        config = trial.user_attrs.get("config", {})
        metrics = trial.user_attrs.get("metrics", {})
        row = [str(trial.number)] + [_fmt(v) for v in trial.values]
        if not multi:
            row.append(_fmt(metrics.get("test_" + objectives[0].key.removeprefix("val_"))))
        row += [
            str(config.get("fusion", "?")),
            str(config.get("head", "?")),
            _fmt(config.get("lr")),
            str(trial.user_attrs.get("epochs_run", "-")),
        ]
        table.add_row(*(escape(cell) for cell in row))
    if shown:
        console.print(table)
    ran = after.finished - before.finished
    console.print(
        f"{ran} trial(s) this run in {seconds:.0f} s; study: {after.complete} complete, {after.pruned} pruned, "
        f"{after.failed} failed, {after.running} running, {after.waiting} waiting "
        f"(target {settings.trials}; {after.stale} stale retried, {after.overflow} overflow)"
    )
    if storage.kind in ("sqlite", "rdb"):
        console.print(f"[dim]dashboard: optuna-dashboard {storage.display}[/dim]")
    elif storage.kind == "journal":
        console.print(f"[dim]dashboard: optuna-dashboard {storage.display.removeprefix('journal:')}[/dim]")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4g}"
    return str(value)
