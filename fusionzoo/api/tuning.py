"""What :func:`fusionzoo.tune` returns: the Optuna study of one fusion + head, as pandas tables.

    study = fusionzoo.tune("film", trials=20, epochs=5)
    study.trials             # one row per trial: number, state, values, params_*, user attrs
    study.best_params        # the best trial's sampled hyperparameters (single objective)
    study.export("best.toml")  # a preset: fusionzoo.bench(config="best.toml")

The study itself stays in its storage (default ``runs/tune/optuna.db``), so a later call continues it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fusionzoo.config import ConfigError, ExperimentConfig

__all__ = ["TuneResults", "run_tune"]


@dataclass
class TuneResults:
    """A study (``study``: the ``optuna.Study``) in ``runs_dir``, with the settings it was run with."""

    study: Any
    runs_dir: Path
    settings: Any
    config: ExperimentConfig

    @property
    def trials(self) -> pd.DataFrame:
        """One row per trial (``optuna.Study.trials_dataframe``): number, state, value(s), params, attrs."""
        return self.study.trials_dataframe()

    @property
    def best_trials(self) -> list[Any]:
        """The best trial first (single objective) or the Pareto front (several objectives)."""
        from fusionzoo.tune.study import best_trials

        return best_trials(self.study)

    @property
    def best_params(self) -> dict[str, Any]:
        """The sampled hyperparameters of the best trial (of the first objective's best on the front)."""
        best = self.best_trials
        if not best:
            raise ConfigError(f"study {self.study.study_name} has no finished trial yet")
        return dict(best[0].params)

    def export(self, path: str | Path, trial: int | None = None) -> Path:
        """Write the best trial (or trial number ``trial``) as a bench preset at ``path``: its seeds are
        ``[tune] export_seeds``, never the trials' training seed."""
        from fusionzoo.api.sessions import console
        from fusionzoo.tune.session import export_best

        export_best(console(False), self.study, self.settings, self.config,
                    {"export_path": str(path), "export_trial": trial})  # fmt: skip
        return Path(path)

    def report(self, path: str | Path | None = None) -> Path:
        """The HTML report of ``runs_dir`` (its Optuna section shows this study): ``fusionzoo report``."""
        from fusionzoo.api.results import Results

        return Results(self.runs_dir).report(path)

    def __repr__(self) -> str:
        return (
            f"TuneResults(study {self.study.study_name!r} in {str(self.runs_dir)!r}: "
            f"{len(self.study.trials)} trials)"
        )


def run_tune(config: ExperimentConfig, out: Any, *, runs_dir: str | Path | None = None,
             export: str | Path | None = None, verbose: bool = True) -> TuneResults:  # fmt: skip
    """Run the study of ``config`` (``[tune]`` and the experiment tables) up to its target trials."""
    from fusionzoo.launch.select import check_cluster
    from fusionzoo.tune import TuneError
    from fusionzoo.tune.objective import resolve_objective, resolve_objectives
    from fusionzoo.tune.session import DEFAULT_RUNS_DIR, run_study, study_settings

    try:  # the names the command line's --metric/--objectives resolve to (they name the study)
        tune = config.tune
        tune.metric = resolve_objective(tune.metric).key
        if tune.objectives:
            tune.objectives = [o.key for o in resolve_objectives(None, ",".join(tune.objectives))]
    except TuneError as exc:
        raise ConfigError(f"fusionzoo.tune(): {exc}") from None
    if config.tune.fusion is None:
        raise ConfigError("fusionzoo.tune(): fusion is required, e.g. fusionzoo.tune('film')")
    options = {"out": str(runs_dir or DEFAULT_RUNS_DIR), "data_factory": None, "worker_index": 0,
               "quiet": not verbose, "show_test": False, "export_path": None, "plots": False}  # fmt: skip
    settings = study_settings(out, config, options, ())
    check_cluster(config)
    study, _ = run_study(out, settings, config, options)
    results = TuneResults(study, Path(options["out"]), settings, config)
    if export is not None:
        results.export(export)
    return results
