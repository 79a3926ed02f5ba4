"""The keyword arguments of :func:`fusionzoo.bench`, :func:`fusionzoo.tune` and :func:`fusionzoo.evaluate`:
which config field each sets, and the one merge that turns them into a validated config.

The names are the command-line flags' (``--batch-size`` → ``batch_size``, ``--data-option k=v`` →
``data_options={"k": v}``), each setting the same field (tests keep the two tables equal), so a notebook
call and a command line with the same values run the same experiment and share finished runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fusionzoo.config import ConfigError, ExperimentConfig, apply_options, starting_config
from fusionzoo.registry import did_you_mean

__all__ = ["BENCH_OPTIONS", "EVAL_OPTIONS", "TUNE_OPTIONS", "argument_error", "build_config"]

# options of every experiment command: the data, the encoders, the training budget, where runs execute
_DATA = {
    "dataset": "bench.datasets",
    "data_dir": "bench.data_dir",
    "data_options": "data",
    "limit": "bench.limit",
    "on_bad_image": "data.on_bad_image",
    "cache_dir": "bench.cache_dir",
    "mode": "bench.mode",
    "image_encoder": "encoders.image",
    "text_encoder": "encoders.text",
    "pretrained": "encoders.pretrained",
    "text_max_length": "encoders.text_max_length",
    "image_tokens": "encoders.image_tokens",
    "text_tokens": "encoders.text_tokens",
    "num_workers": "encoders.num_workers",
}
_TRAIN = {
    "epochs": "train.epochs",
    "dim": "train.dim",
    "batch_size": "train.batch_size",
    "lr": "train.lr",
    "loss_weights": "train.loss_weights",
    "paper_loss": "train.paper_loss",
    "precision": "train.precision",
    "compile": "train.compile",
}
_RUN = {
    "device": "bench.device",
    "threads": "bench.threads",
    "jobs": "bench.jobs",
    "launcher": "bench.launcher",
    "ray_address": "bench.ray_address",
}

BENCH_OPTIONS: dict[str, str] = {
    **_DATA,
    **_TRAIN,
    **_RUN,
    "out": "bench.out",
    "fusions": "bench.fusions",
    "heads": "bench.heads",
    "seeds": "bench.seeds",
    "unimodal": "bench.with_unimodal",
    "probe": "bench.with_probe",
    "metric": "bench.metric",
    "report": "bench.report",
    "mlflow": "bench.mlflow",
    "tune_trials": "bench.tune_trials",
    "train_protocols": "bench.train_protocols",
    "eval": "eval.suites",
    "protocols": "eval.protocols",
    "efficiency": "eval.efficiency",
    "ddp": "bench.ddp",
    "datasets": "bench.datasets",
    "split_seeds": "bench.split_seeds",
    "train_fractions": "bench.train_fractions",
    "batch_seeds": "bench.batch_seeds",
    "distill_from": "bench.distill_from",
    "distill_t": "train.distill_t",
    "distill_alpha": "train.distill_alpha",
}
TUNE_OPTIONS: dict[str, str] = {
    **_DATA,
    **_TRAIN,
    **_RUN,
    "fusion": "tune.fusion",
    "head": "tune.head",
    "trials": "tune.trials",
    "timeout": "tune.timeout",
    "storage": "tune.storage",
    "study": "tune.study",
    "seed": "tune.seed",
    "metric": "tune.metric",
    "objectives": "tune.objectives",
    "pruner": "tune.pruner",
    "sampler": "tune.sampler",
    "workers": "tune.workers",
    "export_seeds": "tune.export_seeds",
    "heartbeat_interval": "tune.heartbeat_interval",
    "grace_period": "tune.grace_period",
    "max_retry": "tune.max_retry",
}
EVAL_OPTIONS: dict[str, str] = {
    **{k: v for k, v in _DATA.items() if k in ("dataset", "data_dir", "data_options", "limit")},
    **_RUN,
    "protocols": "eval.protocols",
    "efficiency": "eval.efficiency",
}


def argument_error(function: str, exc: ValidationError) -> ConfigError:
    """A ``ConfigError`` naming each wrong argument of ``function``, what was expected and what came (an
    argument that may be one of several types gets one line listing what each would need)."""
    problems: dict[str, list[str]] = {}
    inputs: dict[str, Any] = {}
    for error in exc.errors():
        loc = list(error["loc"]) or ["arguments"]
        where = str(loc[0]) + "".join(f"[{p}]" for p in loc[1:] if isinstance(p, int))  # not union tags
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "sequence_str":  # fusions="film": say what a list looks like
            message = f"expected a list, e.g. [{error['input']!r}], not one string"
        problems.setdefault(where, []).append(message[:1].lower() + message[1:])
        inputs[where] = error["input"]
    return ConfigError(
        f"fusionzoo.{function}(): "
        + "; ".join(
            f"{where}: {' or '.join(dict.fromkeys(m))} (got {inputs[where]!r})"
            for where, m in problems.items()
        )
    )


def build_config(
    function: str,
    config: str | Path | ExperimentConfig | None,
    arguments: dict[str, Any],
    options: dict[str, str],
) -> ExperimentConfig:
    """The config of a call: ``config`` (a preset name, a TOML path, a config object; ``None``: the
    dataset's preset, else the quick one) with every given argument (not ``None``) applied in one merge.

    An argument that is not an option of ``function`` or a value its field refuses is a
    ``ConfigError`` naming the argument (``fusionzoo.bench(): epochs: ...``), raised before any work."""
    unknown = sorted(set(arguments) - set(options))
    if unknown:
        hints = "".join(did_you_mean(name, list(options)) for name in unknown)
        raise ConfigError(
            f"fusionzoo.{function}() got unknown argument(s) {', '.join(unknown)}{hints}; the options are "
            f"{', '.join(sorted(options))}"
        )
    data_options = arguments.get("data_options")
    if data_options is not None and not isinstance(data_options, dict):
        raise ConfigError(
            f"fusionzoo.{function}(): data_options must be a dict of dataset options, e.g. "
            f"{{'size': 400}}, got {data_options!r}"
        )
    values = {k: str(v) if isinstance(v, Path) else v for k, v in arguments.items()}
    base = starting_config(config, values.get("dataset"))
    try:
        return apply_options(base, values, options, config is not None)
    except ConfigError as exc:
        message = str(exc).replace(base.source + ": ", "")
        raise ConfigError(_argument_names(message, values, options, function)) from None


def _argument_names(message: str, values: dict[str, Any], options: dict[str, str], function: str) -> str:
    """``message`` with each config field of a given argument named as that argument."""
    for name, value in values.items():
        if value is None or name == "data_options":
            continue
        table, _, key = options[name].partition(".")
        message = message.replace(f"[{table}] {key}", f"{name} ([{table}] {key})")
    return f"fusionzoo.{function}(): {message}"
