"""Optuna tuning of one fusion + head (see docs/tuning.md). One job per module:

    space.py          the merged search space (training + fusion + head) and ``[space]`` overrides
    plugin_space.py   how a plugin's space is read: its declaration, or a legacy ``search_space(trial)``
    distributions.py  Optuna distributions: describe, suggest, parse a ``[space]`` value
    storage.py        ``--storage`` → an Optuna storage (SQLite/RDB with heartbeats, journal, memory)
    budget.py         the exact trial budget: what counts, the race-free claim, overflow trials
    objective.py      objective choices (the metric registry + cost objectives) and the trial objective
    study.py          settings, study identity, samplers/pruners, opening a study, best trials
    worker.py         the worker loop (run, drain, reclaim dead trials) and ``--workers N`` processes
    export.py         bench presets and plots; display.py the progress and summary; cli.py the command

Python callers (e.g. a tuned benchmark) use the same pieces as ``fusionzoo tune``::

    settings = TuneSettings(fusion="film", trials=20, base_config=run_config.to_dict(), ...)
    report = run_worker(settings, data=data, storage=resolve_storage("journal:runs/t.journal"))
    best = trial_config(best_trials(report.study)[0])

The package is also callable: ``fusionzoo.tune("film", trials=20)`` is :func:`fusionzoo.api.tune`.
"""

from fusionzoo.callable_package import make_callable
from fusionzoo.errors import FusionzooError

make_callable(__name__, "fusionzoo.api:tune")


class TuneError(FusionzooError, ValueError):
    """A tuning input is wrong (storage, metric, study...); the message names it and the fix."""
