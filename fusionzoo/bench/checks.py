"""What ``fusionzoo bench`` checks before any data is touched, on top of :meth:`Experiment.validate`.

The experiment checks its own grid (specs, options, launcher, metric, train protocols); the bench session
also tunes (``--tune-trials``: one objective, a tuning seed apart from the evaluation seeds, a ``[space]``
whose every entry belongs to a cell) and evaluates (``[eval]`` protocols and reference), which live in
the layers above the experiment. Every problem is a :class:`~fusionzoo.config.ConfigError`.
"""

from __future__ import annotations

from fusionzoo import registry
from fusionzoo.bench.tuned import cell_space_overrides
from fusionzoo.config import ConfigError
from fusionzoo.evaluation.session import build_protocols, check_reference
from fusionzoo.experiment import Experiment, canonical_spec
from fusionzoo.tune import TuneError
from fusionzoo.tune.objective import resolve_objectives
from fusionzoo.tune.space import SearchSpaceError
from fusionzoo.tune.study import TUNING_SEED_OFFSET, tuning_seed

__all__ = ["validate_bench"]


def validate_bench(experiment: Experiment) -> None:
    """Raise ``ConfigError``/``RegistryError`` for anything wrong with a bench invocation."""
    experiment.validate()
    config = experiment.config
    if config.bench.tune_trials:
        if len(config.tune.objectives) > 1:
            raise ConfigError(
                "--tune-trials picks one best configuration per cell: give one [tune] metric, not "
                f"objectives {', '.join(config.tune.objectives)}"
            )
        try:
            resolve_objectives(config.tune.metric, [])
        except TuneError as exc:
            raise ConfigError(f"--tune-trials tunes on [tune] metric: {exc}") from None
        _check_tune_seed(experiment)
        _check_tune_space(experiment)
    try:
        build_protocols(config.eval.protocols)
    except registry.RegistryError as exc:
        raise ConfigError(f"--protocols / [eval] protocols: {exc}") from None
    try:
        check_reference(config.eval.reference)
    except registry.RegistryError as exc:
        raise ConfigError(
            f"[eval] reference (the fusion effective robustness is measured against): {exc}"
        ) from None


def _check_tune_seed(experiment: Experiment) -> None:
    """``--tune-trials``: the trials' training seed is none of the evaluation seeds."""
    config = experiment.config
    splits = config.bench.split_seeds or [0]  # with --split-seeds: [tune] seed + split seed
    clash = [tuning_seed(config.tune.seed + s) for s in splits]
    seed = next((s for s in clash if s in config.bench.seeds), clash[0])
    if seed in config.bench.seeds:
        raise ConfigError(
            f"--tune-trials: the trials train with seed {seed} ({TUNING_SEED_OFFSET} + [tune] seed "
            f"{config.tune.seed}), which is also an evaluation seed in --seeds / [bench] seeds "
            f"{', '.join(map(str, config.bench.seeds))}; a reported seed must not repeat the "
            "trial that won on its own luck: drop it from the seeds or choose another [tune] seed"
        )


def _check_tune_space(experiment: Experiment) -> None:
    """``--tune-trials``: every ``[space]`` entry belongs to some cell of the grid."""
    heads = [canonical_spec("head", h) for h in experiment.config.bench.heads]
    base = experiment.base_run_config()
    cells = [
        ("", fusion, base.replace(fusion=fusion, head=head).resolved_head(), "")
        for fusion, pinned in experiment.pairs(experiment.datasets()[0])
        for head in ([pinned] if pinned else heads or [None])
    ]
    try:
        cell_space_overrides(experiment.config, cells)
    except SearchSpaceError as exc:
        raise ConfigError(f"--tune-trials: {exc}") from None
