"""What ``fusionzoo tune`` (and :func:`fusionzoo.tune`) does with a validated config: the study's settings,
the study run up to its target on the configured workers, its summary, the exported best configuration.

``options`` holds what a call asks beyond the config: ``out`` (the runs directory, default
``runs/tune``), ``data_factory``, ``worker_index``, ``quiet``, ``show_test``, ``export_path``,
``export_trial``, ``plots`` and ``pruner`` (given explicitly: a multi-objective study says it ignores it).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fusionzoo import registry

__all__ = ["DEFAULT_RUNS_DIR", "export_best", "run_study", "show_space", "study_settings"]

DEFAULT_RUNS_DIR = "runs/tune"


def show_space(console: Any, config: Any, fusion: str) -> None:
    """Print the merged search space of ``fusion`` (with the config's ``[tune] head`` and ``[space]``)."""
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


def study_settings(console: Any, config: Any, options: dict[str, Any], plugins: tuple[str, ...]) -> Any:
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
        console.print(
            f"--pruner {tune_config.pruner} is ignored: Optuna cannot prune multi-objective studies"
        )
    return settings


def run_study(console: Any, settings: Any, config: Any, options: dict[str, Any]) -> tuple[Any, Any]:
    """Run the study of ``settings`` up to its target (workers on the configured launcher), print its
    summary, export and plot as ``options`` ask; returns the Optuna study and its storage."""
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
        from fusionzoo.config import ConfigError

        raise ConfigError(
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
        raise
    after = budget_counts(study.get_trials(deepcopy=False))
    if quiet:
        return study, storage
    print_summary(
        console, study, settings, storage, before, after, time.monotonic() - started, options["show_test"]
    )
    if options["export_path"]:
        export_best(console, study, settings, config, options)
    if options["plots"]:
        from fusionzoo.tune.export import save_plots

        files, notes = save_plots(study, Path(settings.runs_dir) / "plots")
        for note in notes:
            console.print(f"[dim]plots: {note}[/dim]")
        if files:
            console.print("plots: " + ", ".join(str(f) for f in files))
    return study, storage


def export_best(console: Any, study: Any, settings: Any, config: Any, options: dict[str, Any]) -> None:
    """Write the best trial (or ``options["export_trial"]``) as a bench preset at ``options["export_path"]``."""
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
