"""The Python API: what ``fusionzoo bench``, ``tune`` and ``eval`` do, as functions returning pandas tables.

    import fusionzoo as fz
    results = fz.bench(fusions=["film", "concat_mlp"], seeds=[0, 1], epochs=3)
    results.leaderboard                      # the printed leaderboard's rows (a DataFrame)
    fz.evaluate(results.runs_dir, protocols=["missing_image"]).robustness
    fz.load_results("runs/quick").report()   # runs/quick/report.html

The arguments are the command-line flags (``--batch-size`` → ``batch_size=``, ``--data-option k=v`` →
``data_options={"k": v}``; :mod:`fusionzoo.api.options`), merged into the preset (``config=``, else the
dataset's preset, else the quick one) the way the command line merges its flags, so the same values run
the same experiment and reuse the same finished runs. ``None`` means "the preset's". A wrong argument is
a ``ConfigError`` naming it, raised before any data is generated, encoded or trained. docs/python-api.md
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, InstanceOf, NonNegativeInt, PositiveInt, ValidationError, validate_call

from fusionzoo.api.options import BENCH_OPTIONS, EVAL_OPTIONS, TUNE_OPTIONS, argument_error, build_config
from fusionzoo.api.results import Results, load_results
from fusionzoo.config import ExperimentConfig

__all__ = ["Results", "bench", "evaluate", "load_results", "tune"]

_CHECK = ConfigDict(arbitrary_types_allowed=True, strict=False)
PathLike = str | Path
Preset = InstanceOf[ExperimentConfig]  # checked by isinstance: its model is built on first use (config.py)


def _checked(function: Any) -> Any:
    """``function`` with its annotated arguments checked by pydantic; a wrong one is a ``ConfigError``
    naming it (``fusionzoo.bench(): seeds[0]: input should be ... (got 'a')``), before any work."""
    import functools

    validated = validate_call(config=_CHECK)(function)

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return validated(*args, **kwargs)
        except ValidationError as exc:
            if exc.title != function.__name__:  # raised inside, not by the argument check
                raise
            raise argument_error(function.__name__, exc) from None

    return call


@_checked
def bench(
    fusions: Sequence[str] | None = None,
    heads: Sequence[str] | None = None,
    seeds: Sequence[NonNegativeInt] | None = None,
    epochs: PositiveInt | None = None,
    dataset: str | None = None,
    data_options: dict[str, Any] | None = None,
    data_dir: PathLike | None = None,
    out: PathLike | None = None,
    unimodal: bool | None = None,
    config: PathLike | Preset | None = None,
    *,
    verbose: bool = True,
    **overrides: Any,
) -> Results:
    """Train every fusion × head × seed on identical features and return the runs (``fusionzoo bench``).

    ``fusions``/``heads``: specs (``"fluid:queries=16"``, ``"fluid@mlp"`` pins a head); ``heads=None``
    pairs each fusion with its natural head. ``dataset``: a registered backend (``fusionzoo list
    datasets``); ``data_options`` its options (``{"size": 400}``). ``out``: the runs directory (default
    ``runs/<preset or dataset>``, e.g. ``runs/quick``; finished runs of the same identity are reused).
    ``unimodal``: add the image-only and text-only baselines (default: on for the embedded dataset).
    ``config``: a packaged preset name, a TOML path or an :class:`~fusionzoo.config.ExperimentConfig`.
    ``overrides``: any other flag of ``fusionzoo bench`` (``dim=64``, ``lr=1e-3``, ``threads=2``,
    ``jobs=2``, ``probe=True``, ``report=True``, ``eval=["robustness"]``, ...). ``verbose=False``
    prints nothing. Runs that fail are listed in ``Results.failed`` (and warned about), not raised.
    """
    import warnings

    from fusionzoo.api import sessions

    arguments = {"fusions": fusions, "heads": heads, "seeds": seeds, "epochs": epochs, "dataset": dataset,
                 "data_options": data_options, "data_dir": data_dir, "out": out, "unimodal": unimodal,
                 **overrides}  # fmt: skip
    arguments = {k: list(v) if isinstance(v, tuple) else v for k, v in arguments.items()}
    experiment, store = sessions.prepare_bench(build_config("bench", config, arguments, BENCH_OPTIONS))
    results = sessions.run_bench(experiment, store, sessions.console(verbose))
    assert results is not None
    if results.failed:
        warnings.warn(
            f"{len(results.failed)} run(s) failed: "
            + "; ".join(f"{label}: {error}" for label, error in results.failed.items())
            + ". Fix the cause and call again: only the failed and missing runs are trained.",
            RuntimeWarning,
            stacklevel=2,
        )
    return results


@_checked
def evaluate(
    runs_dir: PathLike,
    protocols: Sequence[str] | None = None,
    efficiency: bool | None = None,
    config: PathLike | Preset | None = None,
    *,
    verbose: bool = True,
    **overrides: Any,
) -> Results:
    """Evaluate the finished runs of ``runs_dir`` without retraining (``fusionzoo eval``): robustness
    ``protocols`` (specs, e.g. ``["missing_image:rates=0;0.5;1", "feature_noise"]``) and/or the
    ``efficiency`` metrics. Returns the runs with ``Results.robustness`` and ``Results.efficiency``
    filled; a rerun evaluates only what is missing. ``overrides``: ``device``, ``threads``, ``jobs``,
    ``launcher``, ``ray_address`` and, for runs of older versions, ``dataset``/``data_dir``/
    ``data_options``/``limit``. What could not be evaluated is listed in ``Results.problems``."""
    from fusionzoo.api import sessions

    arguments = {"protocols": list(protocols) if protocols is not None else None, "efficiency": efficiency,
                 **overrides}  # fmt: skip
    built = build_config("evaluate", config, arguments, EVAL_OPTIONS)
    store = sessions.prepare_eval(built, runs_dir)
    return sessions.run_eval(built, store, sessions.console(verbose))


@_checked
def tune(
    fusion: str,
    head: str | None = None,
    trials: PositiveInt | None = None,
    epochs: PositiveInt | None = None,
    dataset: str | None = None,
    data_options: dict[str, Any] | None = None,
    out: PathLike | None = None,
    config: PathLike | Preset | None = None,
    *,
    export: PathLike | None = None,
    sampler: Literal["tpe", "random", "gp"] | None = None,
    verbose: bool = True,
    **overrides: Any,
) -> Any:
    """Tune one fusion + head with Optuna (``fusionzoo tune``) and return the study's
    :class:`~fusionzoo.api.tuning.TuneResults` (``.study``, ``.trials``, ``.best_params``).

    ``trials``: the study's target number of trials (a rerun adds only the remainder). ``out``: where
    the study lives (default ``runs/tune``). ``export``: also write the best configuration as a
    ``fusionzoo bench --config`` preset. ``overrides``: any other flag of ``fusionzoo tune``
    (``metric="val_accuracy"``, ``objectives=["accuracy", "latency"]``, ``storage="journal:f.log"``,
    ``workers=2``, ``seed=1``, ``dim=64``, ...)."""
    from fusionzoo.api import sessions
    from fusionzoo.api.tuning import run_tune

    arguments = {"fusion": fusion, "head": head, "trials": trials, "epochs": epochs, "dataset": dataset,
                 "data_options": data_options, "sampler": sampler, **overrides}  # fmt: skip
    built = build_config("tune", config, arguments, TUNE_OPTIONS)
    return run_tune(built, sessions.console(verbose), runs_dir=out, export=export, verbose=verbose)
