"""An experiment: one validated :class:`~fusionzoo.config.ExperimentConfig` turned into work.

- :meth:`Experiment.validate` checks everything that can be checked **before touching data**: every
  fusion/head spec against its constructor (and builds each pair once at the configured width, so
  ``--dim 7`` with 8 attention heads fails now), ``[fusion_options]`` tables and keys, the dataset
  names and their options, the leaderboard metric, the runs directory (writable, not a file).
- :meth:`Experiment.inputs` loads each dataset and builds its encoders without encoding (the data
  fingerprint of :mod:`fusionzoo.prepare`); :meth:`Experiment.grid` expands datasets × seeds × fusions
  × heads into :class:`RunSpec` s whose identity covers that fingerprint.
- :meth:`Experiment.training_data` encodes (frozen) or wraps (finetune) a dataset for training.

The CLI modules only parse flags into a config, call this and print.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from typing import Any

from fusionzoo import registry
from fusionzoo.bench.identity import run_code, training_regime
from fusionzoo.bench.results import config_id_of, run_id_of
from fusionzoo.config import UNIMODAL, ConfigError, ExperimentConfig
from fusionzoo.evaluation.train_time import expand_train_protocols
from fusionzoo.prepare import DataOptions, ResolvedInputs, materialise, resolve_inputs
from fusionzoo.train.config import TRAINING_SEMANTICS, RunConfig
from fusionzoo.train.losses import aux_loss_names, check_loss_weights

__all__ = ["Experiment", "RunSpec", "canonical_spec", "plugin_versions"]

VALIDATION_CLASSES = 4  # heads are built once at this class count to validate their specs


def plugin_versions(fusion: str, head: str) -> str:
    """``""`` for built-in plugins (covered by the training semantics), else ``dist==version`` of the
    third-party distributions providing the fusion and head."""
    out = []
    for kind, spec in (("fusion", fusion), ("head", head)):
        entry = registry.get_entry(kind, registry.parse_spec(spec)[0])
        if entry.source == registry.BUILTIN:
            continue
        if entry.source.startswith("local:"):
            out.append(f"{kind}:{entry.source}")
            continue
        try:
            out.append(f"{entry.source}=={importlib.metadata.version(entry.source)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(entry.source)
    return ",".join(out)


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid: a dataset (with its data fingerprint) and a complete RunConfig.

    Its identity (:mod:`fusionzoo.bench.results`) also covers the code of the plugins it uses and its
    training regime (``world`` DDP processes, the AMP precision): :mod:`fusionzoo.bench.identity`."""

    dataset: str
    config: RunConfig
    data_fingerprint: str = ""
    plugins: str = ""
    identity: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    kind: str = "train"  # "train": a fusion + head trained by the Trainer; "probe": the linear-probe floor
    world: int = 1  # processes that train the run together (DDP)

    @classmethod
    def create(
        cls, dataset: str, config: RunConfig, data_fingerprint: str, kind: str = "train", world: int = 1
    ) -> RunSpec:
        head = config.head or config.resolved_head()
        plugins = plugin_versions(config.fusion, head) if kind == "train" else ""
        identity = {
            "dataset": dataset,
            "data_fingerprint": data_fingerprint,
            "fusion": config.fusion,
            "head": head,
            "config_hash": config.config_hash(),
            "semantics": TRAINING_SEMANTICS,
            "plugins": plugins,
            "code": run_code(config, dataset, kind),
            "regime": training_regime(config, world) if kind == "train" else "",
        }
        identity["config_id"] = config_id_of(identity)
        identity["run_id"] = run_id_of(identity["config_id"], config.seed)
        return cls(dataset, config, data_fingerprint, plugins, identity, kind, world)

    def with_config(self, config: RunConfig) -> RunSpec:
        """The same run (dataset, data, kind, world size) with another configuration."""
        return RunSpec.create(self.dataset, config, self.data_fingerprint, self.kind, self.world)

    @property
    def fusion(self) -> str:
        return self.config.fusion

    @property
    def head(self) -> str:
        return self.config.head or self.config.resolved_head()

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def config_hash(self) -> str:
        return self.config.config_hash()

    @property
    def config_id(self) -> str:
        return self.identity["config_id"]

    @property
    def run_id(self) -> str:
        return self.identity["run_id"]

    @property
    def label(self) -> str:
        return (
            f"{self.fusion} + {self.head} · seed {self.seed}"
            + (f" · train {self.config.train_protocol}" if self.config.train_protocol else "")
            + (f" · {self.dataset}" if self.dataset != "synth" else "")
        )

    def identity_columns(self) -> dict[str, Any]:
        """The identity columns of this run's results row."""
        return {**self.identity, "seed": int(self.seed)}


def canonical_spec(kind: str, spec: str, defaults: dict[str, dict[str, Any]] | None = None) -> str:
    """The canonical spec string of ``spec`` (validated; ``defaults[name]`` fills unset options)."""
    name, kwargs = registry.parse_spec(spec)
    registry.get_entry(kind, name)  # unknown name -> RegistryError listing the valid ones
    kwargs = {**(defaults or {}).get(name, {}), **kwargs}  # the preset's options, unless the spec sets them
    return registry.validate_spec(kind, registry.format_spec(name, kwargs))


class Experiment:
    """The work one config describes (see the module docstring)."""

    def __init__(self, config: ExperimentConfig) -> None:
        self.config = config
        self._inputs: dict[str, ResolvedInputs] = {}
        self._data: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------- settings
    def base_run_config(self, **overrides: Any) -> RunConfig:
        return self.config.run_config(**overrides)

    def backend(self, dataset: str) -> Any:
        return registry.create("dataset", dataset)

    def with_unimodal(self, dataset: str) -> bool:
        flag = self.config.bench.with_unimodal
        return bool(self.backend(dataset).demo) if flag is None else flag

    def with_probe(self, dataset: str) -> bool:
        """The linear-probe floor joins the grid: by default on real (non-demo) datasets, frozen mode."""
        flag = self.config.bench.with_probe
        wanted = (not self.backend(dataset).demo) if flag is None else flag
        return bool(wanted) and self.config.bench.mode == "frozen"

    def probe_specs(self, dataset: str, fingerprint: str) -> list[RunSpec]:
        """One linear-probe run per feature view (image, text, both): deterministic, so seed 0 only."""
        from fusionzoo.baselines.linear_probe import FEATURES, PROBE_HEAD, PROBE_NAME

        base = self.base_run_config()
        return [
            RunSpec.create(
                dataset,
                RunConfig(
                    fusion=f"{PROBE_NAME}:features={features}",
                    head=PROBE_HEAD,
                    seed=0,
                    metric=base.metric,
                    device=base.device,
                ),
                fingerprint,
                kind="probe",
            )
            for features in FEATURES
        ]

    def world(self) -> int:
        """Processes that train each run together: torchrun's world size, else ``--ddp`` (1 without)."""
        from fusionzoo.launch.select import distributed_world  # the launch package imports every launcher

        running = distributed_world()
        return running if running > 1 else int(self.config.bench.ddp or 1)

    def data_options(self, dataset: str) -> DataOptions:
        bench = self.config.bench
        return DataOptions(
            dataset=dataset,
            data_dir=bench.data_dir,
            limit=bench.limit,
            mode=bench.mode,
            data=dict(self.config.data),
            encoders=self.config.encoders.model_dump(exclude_none=True),
            cache_dir=bench.cache_dir,
            device="cuda" if bench.device.startswith("cuda") else "cpu",
            freeze_layers=self.config.train.freeze_layers or 0,
        )

    # ----------------------------------------------------------------------------------- validation
    def pairs(self, dataset: str) -> list[tuple[str, str | None]]:
        """(canonical fusion spec, pinned head spec or None) of the grid, unimodal baselines included."""
        config = self.config
        pairs: list[tuple[str, str | None]] = []
        for item in config.bench.fusions:
            fusion, _, pinned = item.partition("@")
            pairs.append(
                (
                    canonical_spec("fusion", fusion, config.fusion_options),
                    canonical_spec("head", pinned) if pinned else None,
                )
            )
        if self.with_unimodal(dataset):
            present = {registry.parse_spec(f)[0] for f, _ in pairs}
            pairs += [
                (canonical_spec("fusion", u, config.fusion_options), None)
                for u in UNIMODAL
                if u not in present and u in registry.list_fusions()
            ]
        return pairs

    def validate(self) -> None:
        """Raise ``ConfigError``/``RegistryError`` for anything wrong, before any data is touched."""
        config = self.config
        base = self.base_run_config()
        for dataset in config.bench.datasets:
            backend = self.backend(dataset)
            backend.check_options(dict(config.data))
        for name, options in config.fusion_options.items():
            try:
                registry.get_entry("fusion", name)
                registry.validate_spec("fusion", registry.format_spec(name, options))
            except registry.RegistryError as exc:
                raise ConfigError(f"{config.source}: [fusion_options.{name}] {exc}") from None
        try:
            registry.validate_spec("launcher", config.bench.launcher)
        except registry.RegistryError as exc:
            raise ConfigError(f"--launcher / [bench] launcher: {exc}") from None
        from fusionzoo.launch.select import check_cluster

        check_cluster(config.bench)
        from fusionzoo.metrics.base import column_direction

        try:
            column_direction(config.metric)
        except registry.RegistryError as exc:
            raise ConfigError(f"--metric / [bench] metric: {exc}") from None
        if config.bench.tune_trials:
            from fusionzoo.tune import TuneError
            from fusionzoo.tune.objective import resolve_objectives

            if len(config.tune.objectives) > 1:
                raise ConfigError(
                    "--tune-trials picks one best configuration per cell: give one [tune] metric, not "
                    f"objectives {', '.join(config.tune.objectives)}"
                )
            try:
                resolve_objectives(config.tune.metric, [])
            except TuneError as exc:
                raise ConfigError(f"--tune-trials tunes on [tune] metric: {exc}") from None
            self._check_tune_seed()
            self._check_tune_space()
        heads = [canonical_spec("head", h) for h in config.bench.heads]
        try:
            expand_train_protocols(config.bench.train_protocols)
        except registry.RegistryError as exc:
            raise ConfigError(f"--train-protocols / [bench] train_protocols: {exc}") from None
        from fusionzoo.evaluation.session import build_protocols, check_reference

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
        seen: set[tuple[str, str]] = set()
        aux_names: list[tuple[str, ...] | None] = []
        for fusion, pinned in self.pairs(config.bench.datasets[0]):
            for head in [pinned] if pinned else heads or [None]:
                run = base.replace(fusion=fusion, head=head)
                pair = (fusion, run.resolved_head())
                if pair not in seen:
                    seen.add(pair)
                    aux_names.append(build_once(run, pair))
        check_grid_loss_weights(base, aux_names)

    def _check_tune_seed(self) -> None:
        """``--tune-trials``: the trials' training seed is none of the evaluation seeds."""
        from fusionzoo.tune.study import TUNING_SEED_OFFSET, tuning_seed

        seed = tuning_seed(self.config.tune.seed)
        if seed in self.config.bench.seeds:
            raise ConfigError(
                f"--tune-trials: the trials train with seed {seed} ({TUNING_SEED_OFFSET} + [tune] seed "
                f"{self.config.tune.seed}), which is also an evaluation seed in --seeds / [bench] seeds "
                f"{', '.join(map(str, self.config.bench.seeds))}; a reported seed must not repeat the "
                "trial that won on its own luck: drop it from the seeds or choose another [tune] seed"
            )

    def _check_tune_space(self) -> None:
        """``--tune-trials``: every ``[space]`` entry belongs to some cell of the grid."""
        from fusionzoo.bench.tuned import cell_space_overrides
        from fusionzoo.tune.space import SearchSpaceError

        heads = [canonical_spec("head", h) for h in self.config.bench.heads]
        base = self.base_run_config()
        cells = [
            ("", fusion, base.replace(fusion=fusion, head=head).resolved_head(), "")
            for fusion, pinned in self.pairs(self.config.bench.datasets[0])
            for head in ([pinned] if pinned else heads or [None])
        ]
        try:
            cell_space_overrides(self.config, cells)
        except SearchSpaceError as exc:
            raise ConfigError(f"--tune-trials: {exc}") from None

    # ------------------------------------------------------------------------------------------ data
    def inputs(self, dataset: str) -> ResolvedInputs:
        """The dataset loaded and its encoders built (no encoding), cached per dataset."""
        if dataset not in self._inputs:
            self._inputs[dataset] = resolve_inputs(self.data_options(dataset))
        return self._inputs[dataset]

    def training_data(self, dataset: str, console: Any = None, progress: bool = True) -> Any:
        """What the trainer consumes for ``dataset`` (encoded once, then shared by every run)."""
        if dataset not in self._data:
            self._data[dataset] = materialise(self.inputs(dataset), console=console, progress=progress)
        return self._data[dataset]

    # ------------------------------------------------------------------------------------------ grid
    def grid(self, fingerprints: dict[str, str] | None = None) -> list[RunSpec]:
        """Datasets × seeds × (fusion, head) runs, seed-major (every configuration's seed 0 first, so an
        interrupted grid already has a comparable leaderboard), without duplicates.

        ``fingerprints`` maps each dataset to its data fingerprint (default: resolved now, which loads
        the dataset and builds its encoders)."""
        config = self.config
        base = self.base_run_config()
        heads = [canonical_spec("head", h) for h in config.bench.heads]
        train_protocols = expand_train_protocols(config.bench.train_protocols)
        specs: list[RunSpec] = []
        seen: set[str] = set()
        world = self.world()
        for dataset in config.bench.datasets:
            fingerprint = (fingerprints or {}).get(dataset) or self.inputs(dataset).fingerprint
            if self.with_probe(dataset):  # first: cheap, and the floor every fusion is compared with
                specs += self.probe_specs(dataset, fingerprint)
            for seed in config.bench.seeds:
                for fusion, pinned in self.pairs(dataset):
                    for head in [pinned] if pinned else heads or [None]:
                        for train_protocol in train_protocols:  # the train-time protocol axis
                            run = base.replace(fusion=fusion, head=head, seed=int(seed))
                            run = run.replace(head=canonical_spec("head", run.resolved_head()))
                            run = run.replace(train_protocol=train_protocol or run.train_protocol)
                            spec = RunSpec.create(dataset, run, fingerprint, world=world)
                            if spec.run_id not in seen:
                                seen.add(spec.run_id)
                                specs.append(spec)
        return specs


def build_once(run: RunConfig, pair: tuple[str, str]) -> tuple[str, ...] | None:
    """Build the fusion and head of ``run`` once at its width (tiny inputs, nothing trained); returns
    the names of the aux losses they return in training (``None`` when a forward pass on random tokens
    fails: the trainer will say why)."""
    try:
        fusion = registry.create_fusion(run.fusion, run.dim)
        head = registry.create_head(pair[1], run.dim, VALIDATION_CLASSES)
    except registry.RegistryError as exc:
        raise ConfigError(f"{pair[0]} + {pair[1]} at dim={run.dim}: {exc}") from None
    try:
        return aux_loss_names(fusion, head, run.dim)
    except Exception:  # noqa: BLE001 - a plugin that needs real inputs: its aux losses stay unknown
        return None


def check_grid_loss_weights(run: RunConfig, names: list[tuple[str, ...] | None]) -> None:
    """``run.loss_weights`` name only losses of the grid (``names``: each pair's aux losses); a
    ``ConfigError`` listing the valid ones. Not checked when a pair's aux losses are unknown."""
    if run.loss_weights and all(n is not None for n in names):
        try:
            check_loss_weights(run.loss_weights, [name for pair in names for name in pair or ()])
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
