"""What a trial optimises: the objective choices and the Optuna objective that trains one trial.

Objective choices come from the metric registry (``fusionzoo.metrics``): every column a prediction
metric writes is a validation objective ``val_<column>`` (a family such as ``acc_geo_*`` as
``val_acc_geo_<geo>``), maximised when the metric's direction is ``max`` and minimised when it is
``min``. A new metric file is a new objective, with no change here. The cost objectives ``params``,
``latency`` and ``train_time`` (multi-objective mode) are always minimised. Test metrics are never an
objective: a study selects on the validation split only.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import os
import socket
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna

from fusionzoo.tune import TuneError
from fusionzoo.tune.budget import STATUS_ATTR, claim_or_overflow
from fusionzoo.tune.space import SearchSpace

if TYPE_CHECKING:
    from fusionzoo.tune.study import TuneSettings

__all__ = [
    "COST_OBJECTIVES",
    "TUNING_SEED_OFFSET",
    "Objective",
    "ObjectiveSpec",
    "TrialDiverged",
    "measure_latency",
    "objective_choices",
    "resolve_objective",
    "resolve_objectives",
    "trial_base_config",
    "tuning_seed",
]

# objectives that are not validation metrics (multi-objective mode), all minimised
COST_OBJECTIVES = {
    "params": "trainable parameters of the model",
    "latency": "inference latency at batch 1, p50 in ms: the registered `latency` metric",
    "train_time": "training time of the trial, seconds",
}
_DIRECTION = {"max": "maximize", "min": "minimize"}


class TrialDiverged(Exception):
    """The training loss became NaN/inf; the trial fails (and counts toward the budget)."""


@dataclass(frozen=True)
class ObjectiveSpec:
    """One optimisation target: ``key`` in the trial's metrics and its direction."""

    key: str
    direction: str  # "maximize" | "minimize"

    @property
    def is_validation(self) -> bool:
        return self.key.startswith("val_")


def objective_choices() -> dict[str, str]:
    """``{objective or pattern: direction}``: ``val_<column>`` of every registered prediction metric
    (read from the registry on each call, so plugins count), then the cost objectives."""
    from fusionzoo.metrics.base import metric_columns

    choices = {f"val_{column}": _DIRECTION[d] for column, d in metric_columns("predictions").items()}
    return {**choices, **dict.fromkeys(COST_OBJECTIVES, "minimize")}


def resolve_objective(name: str) -> ObjectiveSpec:
    """``val_macro_f1`` / ``macro_f1`` / ``accuracy`` / ``latency`` / ``params``... -> an objective."""
    text = name.strip()
    if text in COST_OBJECTIVES:
        return ObjectiveSpec(text, "minimize")
    choices = objective_choices()
    if text.startswith("test_"):
        raise TuneError(
            f"'{name}' is a test metric; a study selects on the validation split only "
            f"(use 'val_{text[len('test_') :]}')"
        )
    key = f"val_{text.removeprefix('val_')}"
    for pattern, direction in choices.items():
        # a pattern's '*' stands for at least one character (val_acc_geo_* needs a geo)
        if pattern.startswith("val_") and fnmatch.fnmatchcase(key, pattern.replace("*", "?*")):
            return ObjectiveSpec(key, direction)
    valid = list(choices)
    bare = [v.removeprefix("val_") for v in valid if v.startswith("val_")]
    close = difflib.get_close_matches(text, valid + bare, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise TuneError(f"unknown metric '{name}'{hint}; valid metrics: {', '.join(valid)}")


def resolve_objectives(metric: str | None, objectives: Sequence[str] | str | None) -> list[ObjectiveSpec]:
    """``objectives`` (multi-objective, comma list) wins over ``metric`` (default ``val_macro_f1``)."""
    if isinstance(objectives, str):
        objectives = [o for o in (p.strip() for p in objectives.split(",")) if o]
    if objectives:
        specs = [resolve_objective(o) for o in objectives]
        keys = [s.key for s in specs]
        if len(set(keys)) != len(keys):
            raise TuneError(f"objectives repeat a metric: {', '.join(keys)}")
        return specs
    return [resolve_objective(metric or "val_macro_f1")]


class Objective:
    """Suggest a config, train it, report each epoch for pruning, store config+metrics as user attrs."""

    def __init__(
        self,
        settings: TuneSettings,
        space: SearchSpace,
        data: Any,
        study: optuna.Study,
        *,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.space = space
        self.data = data
        self.study = study
        self.objectives = settings.objective_specs()
        self.multi = len(self.objectives) > 1
        self.prune_key = (
            self.objectives[0].key if not self.multi and self.objectives[0].is_validation else None
        )
        self.base = trial_base_config(settings, space)
        self.progress = progress
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        from fusionzoo.train.trainer import train_run

        trial.set_user_attr("worker", self.worker)
        claim_or_overflow(self.study, trial, self.settings.trials)
        try:
            suggestion = self.space.suggest(trial)
            config = self.space.run_config(self.base, suggestion)
        except Exception as exc:
            self._fail(trial, "failed", exc)
            raise
        trial.set_user_attr("config", config.to_dict())
        trial.set_user_attr("config_hash", config.config_hash())
        if suggestion.fixed:
            trial.set_user_attr("fixed_params", suggestion.fixed)

        trained = {"epochs": 0}  # epochs this trial trained, whatever ends it (the compute it took)

        def on_epoch(epoch: int, val_metrics: dict[str, float]) -> None:
            trained["epochs"] = epoch
            if self.prune_key is None:
                return
            value = val_metrics.get(self.prune_key[4:])
            if value is None or math.isnan(value):
                return
            trial.report(float(value), epoch)
            if epoch < config.epochs and trial.should_prune():  # a finished run is never pruned
                trial.set_user_attr(STATUS_ATTR, "pruned")
                trial.set_user_attr("pruned_at_epoch", epoch)
                trial.set_user_attr("epochs_run", epoch)
                trial.set_user_attr("metrics", {f"val_{k}": float(v) for k, v in val_metrics.items()})
                raise optuna.TrialPruned(f"pruned at epoch {epoch} ({self.prune_key}={value:.4f})")

        progress = None
        if self.progress is not None:
            number = trial.number

            def progress(event: dict[str, Any]) -> None:
                self.progress({**event, "trial": number})

        try:
            result = train_run(config, self.data, on_epoch=on_epoch, progress=progress)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr("epochs_run", trained["epochs"])
            self._fail(trial, "failed", exc)
            raise
        metrics = self._metrics(result, config)
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("best_epoch", int(result.best_epoch))
        trial.set_user_attr("epochs_run", int(result.epochs_run))
        if result.status != "ok":
            trial.set_user_attr(STATUS_ATTR, "diverged")
            trial.set_user_attr("error", result.error)
            raise TrialDiverged(result.error or "the training loss became NaN/inf")
        values = []
        for objective in self.objectives:
            value = metrics.get(objective.key)
            if value is None or math.isnan(value):
                valid = ", ".join(sorted(k for k in metrics if not k.startswith("test_")))
                exc = TuneError(f"metric '{objective.key}' is not available for this run; it has: {valid}")
                self._fail(trial, "failed", exc)
                raise exc
            values.append(float(value))
        trial.set_user_attr(STATUS_ATTR, "complete")
        return values if self.multi else values[0]

    def _fail(self, trial: optuna.Trial, status: str, exc: BaseException) -> None:
        trial.set_user_attr(STATUS_ATTR, status)
        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:2000])
        trial.set_user_attr("traceback", "".join(traceback.format_exception(exc))[-4000:])

    def _metrics(self, result: Any, config: Any) -> dict[str, float]:
        metrics: dict[str, float] = {f"val_{k}": float(v) for k, v in result.val_metrics.items()}
        metrics.update({f"test_{k}": float(v) for k, v in result.metrics.items()})
        metrics["params"] = float(result.params)
        metrics["train_time"] = float(result.train_time)
        if any(o.key == "latency" for o in self.objectives) and result.status == "ok":
            metrics["latency"] = measure_latency(config, self.data)
        return {k: v for k, v in metrics.items() if not (isinstance(v, float) and math.isinf(v))}


LATENCY_COLUMN = "latency_p50_ms"  # the ``latency`` objective: this column of the registered metric
LATENCY_SEMANTICS = "metric:latency/latency_p50_ms"  # in the study identity when latency is an objective


def measure_latency(config: Any, data: Any) -> float:
    """The ``latency`` objective: the registered ``latency`` metric (:mod:`fusionzoo.metrics.latency`,
    p50 of single forwards at batch 1, in ms) of ``config``'s model at ``data``'s shapes, on this
    process's threads: the number ``fusionzoo eval --efficiency`` reports for the same model. A fresh
    model is timed (routing aside, an untrained model runs as fast as a trained one)."""
    import numpy as np
    import torch

    from fusionzoo import registry
    from fusionzoo.metrics.base import ModelContext
    from fusionzoo.train.model import FusionModel
    from fusionzoo.train.trainer import resolve_device

    device = resolve_device(config.device)
    model = FusionModel.for_data(config, data).to(device).eval()
    lengths = data.split("val" if data.size("val") else "train").text_lengths()
    ctx = ModelContext(
        model=model,
        image_tokens=int(data.num_image_tokens),
        text_tokens=max(1, int(round(float(np.mean(np.asarray(lengths)))))) if len(lengths) else 1,
        image_dim=int(data.image_dim),
        text_dim=int(data.text_dim),
        num_classes=int(data.num_classes),
        batch_size=int(config.batch_size),
        device=device,
        threads=torch.get_num_threads(),
    )
    return float(registry.create("metric", "latency").compute(ctx)[LATENCY_COLUMN])

# Trials train with seed TUNING_SEED_OFFSET + [tune] seed: never one of the evaluation seeds (a bench's
# [bench] seeds, tune's export seeds), so no reported seed repeats the trial that won on its own luck.
TUNING_SEED_OFFSET = 10_000


def tuning_seed(seed: int) -> int:
    """The training seed of every trial of a study whose ``[tune] seed`` is ``seed``."""
    return TUNING_SEED_OFFSET + int(seed)


def trial_base_config(settings: TuneSettings, space: SearchSpace) -> Any:
    """The ``RunConfig`` every trial starts from: ``base_config`` with the study's fusion and head, its
    seed (default :func:`tuning_seed` of ``settings.seed``) and the metric that picks its best epoch."""
    from fusionzoo.train.config import RunConfig

    base = dict(settings.base_config)
    base["fusion"], base["head"] = space.fusion, space.head
    base.setdefault("seed", tuning_seed(settings.seed))
    primary = settings.objective_specs()[0]
    metric = primary.key[len("val_") :] if primary.is_validation else ""
    if settings.select_on_objective and metric in ("macro_f1", "accuracy"):
        base["metric"] = metric  # best epoch = the epoch with the best tuned metric
    return RunConfig.from_dict(base)
