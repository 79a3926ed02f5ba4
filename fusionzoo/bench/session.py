"""What ``fusionzoo bench`` does, step by step, for a validated :class:`~fusionzoo.experiment.Experiment`:

1. resolve each dataset (load it, build its encoders, fingerprint everything; nothing is encoded);
2. expand the grid and say how many finished runs are reused, and why earlier runs are not;
3. encode (or reuse) the features of the datasets that still have runs to do;
4. run the rest through the launcher with a rich progress display, record each run as it ends;
5. with ``--eval robustness,efficiency`` ([eval] suites), evaluate the grid's finished runs
   (:func:`fusionzoo.evaluation.session.run_eval`: protocols on the checkpoints, efficiency metrics);
6. print the leaderboard (the ``leaderboard`` reporter) and every failure;
7. with ``--report``, write the HTML report of the invocation's runs (``fusionzoo report``), which
   includes the robustness and efficiency results of step 5.

Before training, step 2 records the invocation's provenance (``provenance.parquet``: command line,
versions, git commit, machine, data fingerprints, encoders) and step 3 the classes of each prepared
dataset (``classes.parquet``: names, train counts, head/medium/tail buckets) for the report; with
``--mlflow URI`` every run is also logged to MLflow (:mod:`fusionzoo.bench.tracking`).

:func:`dry_run` does steps 1–2 without generating, encoding or training anything.
"""

from __future__ import annotations

import math
import time
from typing import Any

from fusionzoo import registry
from fusionzoo.bench.runner import GridOutcome, run_grid
from fusionzoo.evaluation.inputs import record_inputs
from fusionzoo.experiment import Experiment
from fusionzoo.report.base import ResultsView
from fusionzoo.results.store import CLASSES_FILE, ResultsStore, read_table, reuse_report

__all__ = ["dry_run", "eval_after_bench", "print_reuse", "run_bench"]


def print_reuse(console: Any, specs: list[Any], store: ResultsStore) -> None:
    """One line: how many finished runs are reused; one more per reason earlier runs are not."""
    reused, reasons = reuse_report(specs, store.load())
    console.print(
        f"[bold]grid[/bold]: {len(specs)} runs; {len(reused)} finished run(s) reused from {store.dir}, "
        f"{len(specs) - len(reused)} to run"
    )
    for reason, labels in reasons.items():
        shown = ", ".join(labels[:3]) + (" …" if len(labels) > 3 else "")
        console.print(f"  [yellow]not reused[/yellow] ({len(labels)} run(s): {reason}): {shown}")


def run_bench(experiment: Experiment, store: ResultsStore, console: Any, threads: int = 1) -> GridOutcome:
    """Steps 1–7 of the module docstring; returns what ran (the caller decides the exit code)."""
    tracker = open_tracker(experiment.config, store, console)  # a bad --mlflow fails before any data work
    try:
        return _run_bench(experiment, store, console, threads, tracker)
    except BaseException as exc:
        if tracker is not None:
            tracker.finish(failed=True, status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise


def _run_bench(
    experiment: Experiment, store: ResultsStore, console: Any, threads: int, tracker: Any
) -> GridOutcome:
    import torch

    from fusionzoo.datasets.specs import DataKey, left_out
    from fusionzoo.launch.resources import torch_threads

    config = experiment.config
    for line in left_out(config.suite.when_available):
        console.print(f"[yellow]note[/yellow]: {line}")
    fingerprints = {}
    for dataset in experiment.data_keys():
        console.print(f"[bold]loading[/bold] {dataset} ({config.bench.mode} mode)")
        fingerprints[dataset] = experiment.inputs(dataset).version  # the data version of every variant
        base = str(DataKey.parse(dataset).base())  # variants share the test split: eval rebuilds it
        record_inputs(store.dir, experiment.data_options(base), fingerprints[dataset])  # for fusionzoo eval
    specs = experiment.grid(fingerprints)
    machine_threads = torch.get_num_threads()

    def prepare(dataset: str) -> Any:
        """The dataset's features, encoded (once) on the machine's threads as ``fusionzoo encode`` does."""
        with torch_threads(machine_threads):
            return experiment.training_data(dataset, console=console)

    trials = config.bench.tune_trials
    if trials:  # encoded before the trials, so tuning and training alone run at --threads
        for dataset in dict.fromkeys(s.dataset for s in specs if s.kind == "train"):
            prepare(dataset)
    with torch_threads(threads):  # tuning, training and the provenance's thread count: one setting
        specs, outcome, chosen = _tune_and_train(
            experiment, store, console, tracker, specs, fingerprints, prepare
        )
    if config.eval.suites:
        eval_after_bench(experiment, store, console, {s.run_id for s in specs})
    view = ResultsView.of(store, {s.run_id for s in specs}, config.metric)
    registry.create("reporter", "leaderboard").render(view, "terminal", console=console)
    registry.create("reporter", "suite").render(view, "terminal", console=console, suite=config.suite)
    if chosen:
        from fusionzoo.bench.tuned import print_tuned

        print_tuned(console, chosen, trials, config)
    console.print(
        f"ran {len(outcome.ran)} runs in {outcome.seconds:.0f} s ({len(outcome.skipped)} reused, "
        f"{len(outcome.failed)} failed, {len(outcome.diverged)} diverged)"
    )
    for label, error in outcome.errors.items():
        console.print(f"[red]failed[/red] {label}: {error}")
    console.print(f"results: {store.results_path}")
    artifacts = []
    if config.bench.report:
        from fusionzoo.report.output import write_report

        started = time.perf_counter()
        artifacts.append(write_report(view, store.dir / "report.html"))
        console.print(f"report: {artifacts[-1]} ({time.perf_counter() - started:.1f} s)")
    if tracker is not None:
        reused = view.runs[view.runs["run_id"].astype(str).isin(set(outcome.skipped))]
        tracker.log_reused(reused, view.history)
        tracker.finish(bool(outcome.failed), artifacts)
    return outcome


def _tune_and_train(
    experiment: Experiment,
    store: ResultsStore,
    console: Any,
    tracker: Any,
    specs: list[Any],
    fingerprints: dict[str, str],
    prepare: Any,
) -> tuple[list[Any], GridOutcome, dict[Any, Any]]:
    """Steps 2–4 (with ``--tune-trials``, the studies first); the caller has set the thread count."""
    from fusionzoo.launch.select import launcher_for
    from fusionzoo.progress import progress_bar

    config = experiment.config
    chosen = {}
    if config.bench.tune_trials:
        from fusionzoo.bench.tuned import tune_grid, tuned_specs

        chosen = tune_grid(experiment, specs, store.dir, config.bench.tune_trials, console, fingerprints)
        specs = tuned_specs(specs, chosen)
    record_provenance(store, config, {d: experiment.inputs(d) for d in fingerprints}, specs)
    print_reuse(console, specs, store)
    finished = store.finished_ids()
    for dataset in dict.fromkeys(s.dataset for s in specs if s.run_id not in finished):
        console.print(f"[bold]preparing[/bold] {dataset} features")  # before the bars: encoding has its own
        record_classes(store, dataset, prepare(dataset), fingerprints[dataset])
    specs = with_teacher_logits(experiment, store, console, specs, prepare)
    progress = progress_bar(console, unit="runs")
    launcher = launcher_for(config, len([s for s in specs if s.run_id not in finished]))
    with progress:
        outcome = run_grid(
            specs,
            store,
            experiment.training_data,
            launcher=launcher,
            progress=progress,
            console=progress.console,
            on_record=tracker.log_record if tracker is not None else None,
            batch_seeds=config.bench.batch_seeds,
        )
    return specs, outcome, chosen


def with_teacher_logits(
    experiment: Experiment, store: ResultsStore, console: Any, specs: list[Any], prepare: Any
) -> list[Any]:
    """``--distill-from``: the students' specs pointed at their teacher's logits over the prepared
    training tokens, computed once and cached in ``<runs dir>/teachers/`` (:mod:`fusionzoo.bench.distill`)."""
    teacher = experiment.teacher()
    finished = store.finished_ids()
    todo = [s for s in specs if s.config.distill_teacher and s.run_id not in finished]
    if teacher is None or not todo:
        return specs
    from fusionzoo.bench.distill import TeacherError, teacher_logits
    from fusionzoo.config import ConfigError

    device = "cuda" if experiment.config.bench.device.startswith("cuda") else "cpu"
    paths = {}
    for dataset in dict.fromkeys(s.dataset for s in todo):
        try:
            paths[dataset] = str(teacher_logits(teacher, prepare(dataset), store.dir, device).resolve())
        except TeacherError as exc:
            raise ConfigError(f"--distill-from / [bench] distill_from: {exc}") from None
        console.print(
            f"[bold]teacher[/bold] {teacher.label} from {teacher.runs_dir}: logits {paths[dataset]}"
        )
    return [
        s.with_config(s.config.replace(distill_logits=paths[s.dataset])) if s in todo else s for s in specs
    ]


def record_provenance(store: ResultsStore, config: Any, inputs: dict[str, Any], specs: list[Any]) -> None:
    """Write this invocation's provenance row (:mod:`fusionzoo.results.provenance`)."""
    from fusionzoo.results.provenance import collect_provenance

    store.record_provenance(collect_provenance(config, inputs, [s.run_id for s in specs]))


def record_classes(store: ResultsStore, dataset: str, data: Any, version: str | None = None) -> None:
    """Write the classes of ``data`` (the labels the trainer uses) under its data version (its
    fingerprint, or ``version``: the variants of a dataset share the test split) unless it has them."""
    from fusionzoo.datasets.specs import DataKey

    version = version or data.fingerprint
    classes = store.dir / CLASSES_FILE
    if classes.exists() and version in set(read_table(classes, ("data_fingerprint",))["data_fingerprint"]):
        return
    store.record_classes(
        DataKey.parse(dataset).spec, version, list(data.classes), data.labels("train"), data.labels("test")
    )


def open_tracker(config: Any, store: ResultsStore, console: Any) -> Any:
    """The MLflow tracker of ``--mlflow URI`` (``None`` without it)."""
    if not config.bench.mlflow:
        return None
    from fusionzoo.bench.tracking import MlflowTracker
    from fusionzoo.endpoints import mask_url

    tracker = MlflowTracker(config.bench.mlflow, store.dir, config, console)
    console.print(f"[bold]mlflow[/bold]: logging runs to {mask_url(config.bench.mlflow)}")
    return tracker


def eval_after_bench(experiment: Experiment, store: ResultsStore, console: Any, run_ids: set[str]) -> None:
    """``bench --eval``: robustness ([eval] protocols, else the default suite) and/or efficiency."""
    from fusionzoo.evaluation.session import DEFAULT_PROTOCOLS, run_eval

    suites = experiment.config.eval.suites
    protocols = list(experiment.config.eval.protocols or DEFAULT_PROTOCOLS) if "robustness" in suites else []
    console.print(f"[bold]evaluating[/bold] the grid's runs: {', '.join(suites)}")
    run_eval(
        experiment.config, store, console, protocols=protocols, efficiency="efficiency" in suites,
        run_ids=run_ids, experiment=experiment,
    )  # fmt: skip


def dry_run(experiment: Experiment, store: ResultsStore, console: Any) -> None:
    """The grid, the data and cache status, what is reused and a cost estimate; nothing is built.

    The estimate of each run says its source (:mod:`fusionzoo.bench.estimate`): earlier runs of the
    same configuration, else a few timed training steps per distinct configuration (seeds share it)."""
    from rich.table import Table

    from fusionzoo.bench.estimate import Estimator
    from fusionzoo.prepare import cache_status

    config = experiment.config
    statuses = {}
    for dataset in experiment.data_keys():
        status = cache_status(experiment.data_options(dataset))
        statuses[dataset] = status
        console.print(f"[bold]{dataset}[/bold]: dataset {status['dataset']}")
        console.print(
            f"  features in {status['cache_dir']}: "
            + ", ".join(f"{k} {v}" for k, v in status["features"].items())
        )
    specs = experiment.grid(
        {d: s.get("version") or s["fingerprint"] or "not-yet-known" for d, s in statuses.items()}
    )
    print_reuse(console, specs, store)
    finished = store.finished_ids()
    estimator = Estimator(store, threads=config.bench.threads or 1)
    table = Table(title="runs", title_justify="left")
    for col in ("#", "dataset", "fusion", "head", "seed", "config", "state", "est. time", "estimated from"):
        table.add_column(col)
    total, unknown, sources = 0.0, 0, {}
    for i, spec in enumerate(specs, 1):
        done = spec.run_id in finished
        estimate = None if done else estimator(spec, statuses[spec.dataset]["shapes"])
        if estimate is not None and math.isnan(estimate.seconds):
            unknown += 1
        elif estimate is not None:
            total += estimate.seconds
            kind = estimate.source.split(" (")[0]
            sources[kind] = sources.get(kind, 0) + 1
        table.add_row(
            str(i),
            spec.dataset,
            spec.fusion,
            spec.head,
            str(spec.seed),
            spec.config_hash,
            "finished (reused)" if done else "to run",
            "-" if estimate is None else "?" if math.isnan(estimate.seconds) else f"{estimate.seconds:.0f} s",
            "-" if estimate is None else estimate.source or "no earlier run, features not cached yet",
        )
    console.print(table)
    todo = len([s for s in specs if s.run_id not in finished])
    estimate = f"about {total / 60:.1f} min of training for {todo - unknown} runs"
    if sources:
        estimate += " (" + ", ".join(f"{n} from {k}" for k, n in sources.items()) + ")"
    if "timed steps" in sources:
        estimate += "; timed steps leave out data batching and early stopping"
    if unknown:
        estimate += (
            f"; {unknown} runs without an estimate (no earlier run and the features are not cached yet)"
        )
    if config.bench.tune_trials:
        cells = len(
            {(s.dataset, s.fusion, s.head, s.config.train_protocol) for s in specs if s.kind == "train"}
        )
        estimate += (
            f"; first, --tune-trials {config.bench.tune_trials}: {cells} studies of "
            f"{config.bench.tune_trials} trials × {config.run_config().epochs} epochs (the runs above then "
            "use each study's best configuration)"
        )
    console.print(f"cost estimate: {estimate}. Nothing was trained (--dry-run).")
