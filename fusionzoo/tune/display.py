"""What ``fusionzoo tune`` shows: the trial-budget progress (best so far, a bar per running trial) and
the summary table of the best trials (or the Pareto front)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["TuneDisplay", "fmt_value", "print_summary"]


class TuneDisplay:
    """Rich progress: the trial budget (done/target, best so far) and a transient per-trial epoch bar."""

    def __init__(self, console: Any, settings: Any, study: Any, quiet: bool) -> None:
        self.console = console
        self.settings = settings
        self.study = study
        self.quiet = quiet
        self.progress: Any = None
        self.task: Any = None
        self.trial_task: Any = None

    def __enter__(self) -> TuneDisplay:
        if self.quiet:
            return self
        from fusionzoo.progress import progress_bar

        self.progress = progress_bar(self.console, unit="trials")
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
        from fusionzoo.tune.budget import budget_counts

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
                f"  trial {event['trial']}: epoch 0/{event['epochs']}", total=event["epochs"], unit="epochs"
            )
        elif event["event"] == "epoch" and self.trial_task is not None:
            val = event.get("val", math.nan)
            self.progress.update(
                self.trial_task,
                completed=event["epoch"],
                description=f"  trial {event['trial']}: epoch {event['epoch']}/{event['epochs']} "
                f"val {event.get('metric', '')} {val:.4f}",
            )


def print_summary(
    console: Any,
    study: Any,
    settings: Any,
    storage: Any,
    before: Any,
    after: Any,
    seconds: float,
    show_test: bool = False,
) -> None:
    """The best trials (or the Pareto front) by their validation scores and the study's counts.

    Test metrics are stored with every trial but shown only with ``show_test`` (``--show-test``): a
    test score beside the validation score invites choosing a trial on the test split."""
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
    test_key = "test_" + objectives[0].key.removeprefix("val_")
    show_test = show_test and not multi
    if show_test:
        table.add_column(f"test {test_key[5:]}", justify="right")
    table.add_column("fusion")
    table.add_column("head")
    table.add_column("lr", justify="right")
    table.add_column("epochs", justify="right")
    for trial in shown:
        config = trial.user_attrs.get("config", {})
        metrics = trial.user_attrs.get("metrics", {})
        row = [str(trial.number)] + [fmt_value(v) for v in trial.values]
        if show_test:
            row.append(fmt_value(metrics.get(test_key)))
        row += [
            str(config.get("fusion", "?")),
            str(config.get("head", "?")),
            fmt_value(config.get("lr")),
            str(trial.user_attrs.get("epochs_run", "-")),
        ]
        table.add_row(*(escape(cell) for cell in row))
    if shown:
        console.print(table)
        if show_test:
            console.print(
                "[dim]test scores for reference: trials are selected on the validation split only[/dim]"
            )
        elif not multi:
            console.print("[dim]each trial's test metrics are stored with it; --show-test shows them[/dim]")
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


def fmt_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4g}"
    return str(value)
