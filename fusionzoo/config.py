"""One validated experiment config for ``bench``, ``tune`` and ``eval``: TOML presets + flags, one merge.

A preset is a TOML file (or the name of a packaged one in ``fusionzoo/presets/``: ``quick``,
``glami1m_table1``, ...) with these tables, every key optional::

    [bench]            the grid and where it runs: datasets (or dataset), fusions, heads, seeds,
                       with_unimodal, with_probe, mode, metric, out, data_dir, limit, device, threads,
                       cache_dir, launcher, train_protocols, tune_trials, jobs, ray_address, ddp,
                       report, mlflow, split_seeds, train_fractions (docs/scale.md, docs/report.md,
                       docs/suites.md); datasets are dataset specs: synth:size=800,synth_seed=1
    [data]             options of the dataset backend (``fusionzoo list datasets`` shows them)
    [encoders]         image, text, pretrained, batch_size, text_max_length, image_tokens, text_tokens,
                       num_workers
    [train]            RunConfig's fields (fusionzoo.train.config) every run shares: dim, epochs, lr, ...
                       (TrainSection: typed as RunConfig declares them, checked by RunConfig)
    [fusion_options.X] hyperparameters fusion X gets in this preset unless its spec sets them
    [suite]            datasets, when_available, baseline, rope, normalise: several datasets and the
                       cross-dataset summary (fusionzoo.datasets.specs, docs/suites.md)
    [eval]             protocols, efficiency (what fusionzoo eval evaluates), suites (what bench runs after
                       training: robustness and/or efficiency)
    [tune]             the tuning settings (trials, sampler, pruner, metric, storage, ...)
    [space]            search-space overrides of ``fusionzoo tune`` (checked against the merged space)
    [pruner]           options of the [tune] pruner (PrunerSection: MedianPruner's or HyperbandPruner's)
    [paper]            published numbers, shown by reports only

Precedence: the field defaults below < the preset < flags given on the command line
(:meth:`ExperimentConfig.with_overrides`, one merge for every command). Unknown tables or keys
anywhere are errors that list the valid ones.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
import typing
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from fusionzoo.errors import InputError
from fusionzoo.registry import did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "ConfigError",
    "ExperimentConfig",
    "apply_options",
    "default_preset",
    "starting_config",
    "PRESETS_PACKAGE",
    "UNIMODAL",
    "load_config",
    "preset_names",
    "resolve_preset",
]

PRESETS_PACKAGE = "fusionzoo.presets"
DEFAULT_PRESET = "quick"
UNIMODAL = ("image_only", "text_only")


class ConfigError(InputError, ValueError):
    """A preset file, a table, a key or a flag is wrong; the message names it and lists valid values."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _str_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class BenchSection(_Section):
    datasets: list[str] = Field(default_factory=lambda: ["synth"])
    fusions: list[str] = Field(default_factory=lambda: ["fluid", "film", "concat_mlp", "late_fusion", "tfn"])
    heads: list[str] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    with_unimodal: bool | None = None  # None: the dataset backend decides (on for the embedded demo)
    with_probe: bool | None = None  # None: the dataset backend decides (on for real datasets)
    mode: Literal["frozen", "finetune"] = "frozen"
    metric: str = "test_accuracy"
    out: str | None = None  # None: runs/<preset name or dataset>
    data_dir: str | None = None
    limit: int | None = Field(default=None, ge=1)
    device: str = "auto"
    threads: int | None = Field(default=None, ge=1)
    cache_dir: str | None = None  # None: $FUSIONZOO_CACHE, else <data dir>/features
    launcher: str = "local"  # a launcher spec (fusionzoo list launchers)
    report: bool = False  # write <runs dir>/report.html at the end (fusionzoo report)
    mlflow: str | None = None  # MLflow tracking URI: log every run (fusionzoo.bench.tracking)
    train_protocols: list[str] = Field(default_factory=list)  # train-time protocol axis: SPEC@LEVEL or SPEC
    tune_trials: int = Field(default=0, ge=0)  # > 0: every cell tuned with this Optuna budget first
    jobs: int | Literal["auto"] | None = None  # tasks at once ([run] jobs); None/auto: the free CPU's
    # the seeds of one configuration train as one stacked model (local, pool); None: on CUDA only
    batch_seeds: bool | None = None

    @field_validator("jobs", mode="before")
    @classmethod
    def _jobs(cls, value: Any) -> Any:
        from fusionzoo.run_settings import parse_jobs

        return None if value is None else parse_jobs(value)

    ray_address: str | None = None  # --launcher ray: the cluster to join (None: RAY_ADDRESS or a local one)
    ddp: int | None = Field(default=None, ge=1)  # finetune: processes per run (DistributedDataParallel)
    distill_from: str | None = None  # RUNS_DIR[:FUSION]: train the grid's fusions as students of that teacher
    split_seeds: list[int] = Field(
        default_factory=list
    )  # re-drawn train/val splits (test fixed); []: the loader's
    train_fractions: list[float] = Field(default_factory=list)  # learning curve: nested training subsets

    @model_validator(mode="before")
    @classmethod
    def _dataset_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "dataset" in data:
            data = dict(data)
            if "datasets" in data:
                raise ValueError("give either dataset or datasets, not both")
            data["datasets"] = data.pop("dataset")
        return data

    _lists = field_validator("datasets", "fusions", "heads", "train_protocols", mode="before")(_str_list)

    @field_validator("seeds", "split_seeds")
    @classmethod
    def _seeds(cls, seeds: list[int]) -> list[int]:
        if any(s < 0 for s in seeds):
            raise ValueError("seeds must be integers >= 0")
        if len(set(seeds)) != len(seeds):
            raise ValueError("a seed is given twice")
        return seeds

    @field_validator("train_fractions")
    @classmethod
    def _fractions(cls, fractions: list[float]) -> list[float]:
        bad = [f for f in fractions if not 0 < f <= 1]
        if bad:
            raise ValueError(f"train fractions must lie in (0, 1], got {', '.join(map(str, bad))}")
        if len(set(fractions)) != len(fractions):
            raise ValueError("a train fraction is given twice")
        return sorted(fractions)


class SuiteSection(_Section):
    """A suite: datasets compared together, and how the cross-dataset summary compares them
    (:mod:`fusionzoo.datasets.specs`). ``datasets`` become ``[bench] datasets``; ``when_available`` are
    dataset specs with ``$VARIABLES`` that join the suite only when every variable they name is set
    (e.g. a built check set); ``baseline`` is the simplest method every other is compared with;
    ``rope`` the practical-equivalence margin (0.01 = 1 point); ``normalise`` the per-dataset score
    normalisation (``chance``, ``baseline``, ``zscore``, ``none``)."""

    datasets: list[str] = Field(default_factory=list)
    when_available: list[str] = Field(default_factory=list)
    baseline: str | None = None
    rope: float = Field(default=0.01, ge=0)
    normalise: Literal["chance", "baseline", "zscore", "none"] = "chance"

    _lists = field_validator("datasets", "when_available", mode="before")(_str_list)


class EncodersSection(_Section):
    image: str | None = None
    text: str | None = None
    pretrained: bool | None = None
    batch_size: int = Field(default=64, ge=1)
    text_max_length: int | None = Field(default=None, ge=1)
    image_tokens: str | int = "all"
    text_tokens: str = "all"
    num_workers: int | None = Field(default=None, ge=0)


PER_RUN_FIELDS = ("fusion", "head", "seed")  # set per run by the grid, never in [train]


class _TrainBase(_Section):
    """``[train]``: the fields of :class:`~fusionzoo.train.config.RunConfig` every run of the grid shares,
    each typed as RunConfig declares it; ``None`` (unset) keeps RunConfig's default. After the types,
    RunConfig's own checks (ranges, the early-stopping metric, the train protocol) run on the set values."""

    @model_validator(mode="before")
    @classmethod
    def _per_run(cls, data: Any) -> Any:
        if isinstance(data, dict):
            bad = sorted(set(data) & set(PER_RUN_FIELDS))
            if bad:
                raise ValueError(
                    f"{', '.join(bad)} are set per run by the grid ([bench] fusions/heads/seeds)"
                )
            if isinstance(data.get("loss_weights"), str):
                from fusionzoo.train.config import parse_loss_weights

                data = {**data, "loss_weights": parse_loss_weights(data["loss_weights"])}
        return data

    @model_validator(mode="after")
    def _run_config(self) -> Any:
        from fusionzoo.train.config import RunConfig

        RunConfig.from_dict(self.values())  # a ValueError naming the field and the accepted values
        return self

    def values(self) -> dict[str, Any]:
        """The fields the preset or the options set (RunConfig keyword arguments)."""
        return self.model_dump(exclude_none=True)


def define_train_section() -> type[_TrainBase]:
    """The ``[train]`` model (``TrainSection``), built from RunConfig's fields so the two never differ.

    Built on first use, not at import: RunConfig's package loads torch, and ``import fusionzoo.config``
    (``fusionzoo --help`` reads the presets) must not. :class:`ExperimentConfig` names the model and
    builds itself on its first validation (:meth:`ExperimentConfig.model_rebuild`)."""
    if "TrainSection" not in globals():
        from fusionzoo.train.config import RunConfig

        hints = typing.get_type_hints(RunConfig)
        fields: dict[str, Any] = {
            f.name: (hints[f.name] | None, None)
            for f in dataclasses.fields(RunConfig)
            if f.name not in PER_RUN_FIELDS
        }
        globals()["TrainSection"] = create_model("TrainSection", __base__=_TrainBase, **fields)
    return globals()["TrainSection"]


class EvalSection(_Section):
    protocols: list[str] = Field(
        default_factory=list
    )  # protocol specs; [] with robustness: the default suite
    efficiency: bool = False
    suites: list[Literal["robustness", "efficiency"]] = Field(default_factory=list)  # bench --eval
    reference: str = "concat_mlp"  # the fusion effective robustness is measured against

    _lists = field_validator("protocols", "suites", mode="before")(_str_list)


class TuneSection(_Section):
    fusion: str | None = None
    head: str | None = None
    trials: int = Field(default=50, ge=1)
    timeout: float | None = Field(default=None, gt=0)
    storage: str | None = None
    study: str | None = None
    seed: int = Field(default=0, ge=0)
    metric: str = "val_macro_f1"
    objectives: list[str] = Field(default_factory=list)
    pruner: Literal["median", "hyperband", "successive_halving", "none"] = "median"
    sampler: Literal["tpe", "random", "gp"] = "tpe"
    workers: int = Field(default=1, ge=1)
    heartbeat_interval: int = Field(default=60, ge=1)
    grace_period: int | None = Field(default=None, ge=1)
    max_retry: int = Field(default=3, ge=0)
    export_seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives(cls, value: Any) -> Any:
        return [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value


# [pruner] keys of each [tune] pruner: the keyword arguments of optuna.pruners.MedianPruner / HyperbandPruner
PRUNER_OPTIONS = {
    "median": ("n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"),
    "hyperband": ("min_resource", "max_resource", "reduction_factor", "bootstrap_count"),
    "none": (),
}


class PrunerSection(_Section):
    """``[pruner]``: options of the ``[tune] pruner`` (unset: Optuna's defaults, and for hyperband
    ``max_resource`` = the epochs); an option of the other pruner is an error naming both."""

    n_startup_trials: int | None = Field(default=None, ge=0)
    n_warmup_steps: int | None = Field(default=None, ge=0)
    interval_steps: int | None = Field(default=None, ge=1)
    n_min_trials: int | None = Field(default=None, ge=1)
    min_resource: int | None = Field(default=None, ge=1)
    max_resource: int | Literal["auto"] | None = Field(default=None)
    reduction_factor: int | None = Field(default=None, ge=2)
    bootstrap_count: int | None = Field(default=None, ge=0)

    def values(self) -> dict[str, Any]:
        """The options set (the pruner's keyword arguments)."""
        return self.model_dump(exclude_none=True)


class ExperimentConfig(_Section):
    """Everything a bench, tune or eval run needs (see the module docstring for each table)."""

    bench: BenchSection = Field(default_factory=BenchSection)
    data: dict[str, Any] = Field(default_factory=dict)
    encoders: EncodersSection = Field(default_factory=EncodersSection)
    train: TrainSection = Field(default_factory=lambda: define_train_section()())  # noqa: F821
    fusion_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    eval: EvalSection = Field(default_factory=EvalSection)
    suite: SuiteSection = Field(default_factory=SuiteSection)
    tune: TuneSection = Field(default_factory=TuneSection)
    space: dict[str, Any] = Field(default_factory=dict)
    pruner: PrunerSection = Field(default_factory=PrunerSection)
    paper: dict[str, Any] = Field(default_factory=dict)
    source: str = Field(default="defaults", exclude=True)
    name: str = Field(default="", exclude=True)  # preset name, for the default runs directory

    @model_validator(mode="before")
    @classmethod
    def _suite_datasets(cls, data: Any) -> Any:
        """``[suite] datasets`` (+ the ``when_available`` ones whose variables are set) become
        ``[bench] datasets``, once: flags given later override them like any other preset value."""
        suite = data.get("suite") if isinstance(data, dict) else None
        if not isinstance(suite, dict) or not suite.get("datasets"):
            return data  # when_available alone adds nothing: it completes a suite's datasets
        from fusionzoo.datasets.specs import available_datasets

        bench = dict(data.get("bench") or {})
        if "datasets" in bench or "dataset" in bench:
            raise ValueError("give the datasets in [suite] datasets or in [bench] datasets, not both")
        suite = dict(suite)
        bench["datasets"] = _str_list(suite.pop("datasets")) + available_datasets(
            _str_list(suite.get("when_available", []))
        )
        return {**data, "bench": bench, "suite": suite}

    @model_validator(mode="after")
    def _pruner_options(self) -> ExperimentConfig:
        wrong = sorted(set(self.pruner.values()) - set(PRUNER_OPTIONS[self.tune.pruner]))
        if wrong:
            fits = PRUNER_OPTIONS[self.tune.pruner]
            raise ValueError(
                f"[pruner] {', '.join(wrong)} {'is not an option' if len(wrong) == 1 else 'are not options'} "
                f"of the {self.tune.pruner} pruner ([tune] pruner); its options: {', '.join(fits) or 'none'}"
            )
        return self

    @classmethod
    def model_rebuild(cls, **kwargs: Any) -> bool | None:
        """Pydantic builds the model on its first validation through this: define ``TrainSection`` first."""
        define_train_section()
        return super().model_rebuild(**kwargs)

    # ----------------------------------------------------------------------------------------- derived
    def run_config(self, **overrides: Any) -> Any:
        """The base RunConfig of every run of the grid (fusion/head/seed are set per run)."""
        from fusionzoo.train.config import RunConfig

        values = {**self.train.values(), "mode": self.bench.mode, "device": self.bench.device, **overrides}
        try:
            return RunConfig.from_dict(values)
        except ValueError as exc:
            raise ConfigError(f"{self.source}: [train] {exc}") from exc

    @property
    def metric(self) -> str:
        """The leaderboard metric as a results column (``test_`` prefixed when given bare)."""
        metric = self.bench.metric
        return metric if metric.startswith(("test_", "val_")) else f"test_{metric}"

    def runs_dir(self) -> Path:
        if self.bench.out:
            return Path(self.bench.out)
        if self.name:
            return Path("runs") / self.name
        return Path("runs") / "-".join(self.bench.datasets)

    def copy(self) -> ExperimentConfig:
        return self.model_copy(deep=True)

    def to_toml_dict(self) -> dict[str, Any]:
        """The config as preset tables (defaults included), e.g. for provenance and exports."""
        return _drop_none(self.model_dump(mode="json"))

    def with_overrides(self, overrides: dict[str, Any]) -> ExperimentConfig:
        """A copy with ``{"table.key": value}`` overrides applied (``train.*`` keys merge into [train],
        ``data.*`` into [data], ``encoders.*``/``bench.*``/``tune.*``/``eval.*`` replace one field).

        Values that are ``None`` are skipped (a flag that was not given)."""
        data = self.model_dump()
        for path, value in overrides.items():
            if value is None:
                continue
            table, _, key = path.partition(".")
            if table not in data or not key:
                raise ConfigError(f"override '{path}': expected table.key with a table of the config")
            if isinstance(data[table], dict):
                data[table] = {**data[table], key: copy.deepcopy(value)}
        return _validate(data, self.source, self.name)


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _format_errors(exc: ValidationError, source: str) -> str:
    tables = {name: field.annotation for name, field in ExperimentConfig.model_fields.items()}
    problems = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        table = loc[0] if loc else ""
        where = f"[{table}]" + (f" {'.'.join(loc[1:])}" if len(loc) > 1 else "")
        if error["type"] == "extra_forbidden":
            model = tables.get(table) if len(loc) > 1 else ExperimentConfig
            valid = sorted(n for n in getattr(model, "model_fields", {}) if n not in ("source", "name"))
            what = f"unknown key '{loc[-1]}' in [{table}]" if len(loc) > 1 else f"unknown table [{table}]"
            problems.append(f"{what}; valid: {', '.join(valid)}")
        elif not loc:  # a check across tables: its message names them
            problems.append(error["msg"].removeprefix("Value error, "))
        else:
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message} (got {error.get('input')!r})")
    return f"{source}: " + "; ".join(problems)


def _validate(data: dict[str, Any], source: str, name: str = "") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate({**data, "source": source, "name": name})
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


# ------------------------------------------------------------------------------------------------ presets
def preset_names() -> list[str]:
    """Names of the presets shipped in the package (``fusionzoo bench --config NAME``)."""
    return sorted(
        p.name.removesuffix(".toml")
        for p in resources.files(PRESETS_PACKAGE).iterdir()
        if p.name.endswith(".toml")
    )


def resolve_preset(name_or_path: str | Path) -> tuple[str, str, str]:
    """(TOML text, source for messages, preset name) of a packaged preset name or a TOML file path."""
    text = str(name_or_path)
    path = Path(text)
    if path.is_file():
        return path.read_text(), str(path), path.stem
    bare = text.removesuffix(".toml")
    if "/" not in text and bare in preset_names():
        resource = resources.files(PRESETS_PACKAGE) / f"{bare}.toml"
        return resource.read_text(), f"preset '{bare}'", bare
    hint = did_you_mean(bare, preset_names()) if "/" not in text else ""
    raise ConfigError(
        f"config file {text} not found{hint}; give a TOML file or a packaged preset: {', '.join(preset_names())}"
    )


def load_config(name_or_path: str | Path | None = None) -> ExperimentConfig:
    """The config of a preset (a packaged name or a TOML path); ``None`` is the quick preset."""
    text, source, name = resolve_preset(name_or_path or DEFAULT_PRESET)
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from None
    return _validate(data, source, name)


# ---------------------------------------------------------------------------- options (flags, API args)
def default_preset(dataset: str | None) -> str | None:
    """The preset a run without a config starts from: the dataset backend's ``default_preset`` (None:
    the quick preset, the embedded demo's). An unknown dataset is reported by validation."""
    from fusionzoo import registry

    if not dataset:
        return None
    try:
        name = registry.parse_spec(dataset)[0]  # a dataset spec: synth:size=800
        return getattr(registry.get_entry("dataset", name).obj, "default_preset", None)
    except registry.RegistryError:
        return None


def starting_config(config: str | Path | ExperimentConfig | None, dataset: str | None) -> ExperimentConfig:
    """What options are applied to: ``config`` (a packaged preset name, a TOML path or a config object),
    else the preset of ``dataset`` (:func:`default_preset`), else the quick preset."""
    if isinstance(config, ExperimentConfig):
        return config.copy()
    return load_config(config or default_preset(dataset))


def option_value(name: str, value: Any) -> Any:
    """An option's value as its config field takes it: ``dataset`` is one of ``[bench] datasets``, a
    ``loss_weights`` string is parsed (``"contrastive=0.3,ce=1"``), ``paper_loss=False`` is unset."""
    if name == "dataset":
        return [value] if isinstance(value, str) else value
    if name == "loss_weights" and isinstance(value, str):
        from fusionzoo.train.config import parse_loss_weights

        try:
            return parse_loss_weights(value)
        except ValueError as exc:
            raise ConfigError(f"loss_weights: {exc}") from None
    if name == "paper_loss":
        return True if value else None
    return value


def apply_options(
    config: ExperimentConfig, options: dict[str, Any], paths: dict[str, str], config_given: bool
) -> ExperimentConfig:
    """``config`` with the given ``options`` applied in one merge (:meth:`ExperimentConfig.with_overrides`).

    ``options``: option name -> value (``None``: not given); ``paths``: option name -> the config field it
    sets (``"epochs"`` -> ``"train.epochs"``); ``data_options`` (a dict) sets ``[data]`` keys. Without a
    given config (``config_given``), a dataset other than the embedded one runs into ``runs/<dataset>``
    unless ``out`` is given. Raises ``ConfigError`` naming a wrong value."""
    overrides: dict[str, Any] = {}
    for name, value in options.items():
        if value is None or name not in paths:
            continue
        if name == "data_options":
            overrides.update({f"data.{k}": v for k, v in value.items()})
            continue
        overrides[paths[name]] = option_value(name, value)
    config = config.with_overrides(overrides)
    dataset = options.get("dataset")
    if not config_given and dataset and dataset != "synth" and not options.get("out"):
        config = config.model_copy(update={"name": dataset})
        config.bench.out = None
    return config
