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
from fusionzoo.config import UNIMODAL, ConfigError, ExperimentConfig
from fusionzoo.prepare import DataOptions, ResolvedInputs, materialise, resolve_inputs
from fusionzoo.protocols._train_time import check_train_protocol_fusion, expand_train_protocols
from fusionzoo.results.identity import run_code, training_regime
from fusionzoo.results.store import config_id_of, run_id_of
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

    Its identity (:mod:`fusionzoo.results.store`) also covers the code of the plugins it uses and its
    training regime (``world`` DDP processes, the AMP precision): :mod:`fusionzoo.results.identity`."""

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
        """``dataset``: a data key (:class:`~fusionzoo.datasets.specs.DataKey`: the dataset spec and its
        variant); ``data_fingerprint``: the data version (the dataset without the variant)."""
        from fusionzoo.datasets.specs import DataKey

        key = DataKey.parse(dataset)
        head = config.head or config.resolved_head()
        plugins = plugin_versions(config.fusion, head) if kind == "train" else ""
        identity = {
            "dataset": key.spec,
            "data_fingerprint": data_fingerprint,
            "fusion": config.fusion,
            "head": head,
            "config_hash": config.config_hash(),
            "semantics": TRAINING_SEMANTICS,
            "plugins": plugins,
            "code": run_code(config, key.name, kind),
            "regime": training_regime(config, world) if kind == "train" else "",
            "variant": key.variant,
        }
        identity["config_id"] = config_id_of(identity)
        identity["run_id"] = run_id_of(identity["config_id"], config.seed, key.split_seed)
        identity["split_seed"] = -1 if key.split_seed is None else int(key.split_seed)
        identity["train_fraction"] = float(key.train_fraction)
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
        split = int(self.identity.get("split_seed", -1))
        fraction = float(self.identity.get("train_fraction", 1.0))
        return (
            f"{self.fusion} + {self.head} · seed {self.seed}"
            + (f" · split {split}" if split >= 0 else "")
            + (f" · train fraction {fraction:g}" if fraction < 1 else "")
            + (f" · train {self.config.train_protocol}" if self.config.train_protocol else "")
            + (f" · {self.identity['dataset']}" if self.identity.get("dataset", "synth") != "synth" else "")
        )

    def identity_columns(self) -> dict[str, Any]:
        """The identity columns of this run's results row."""
        return {**self.identity, "seed": int(self.seed)}

    def execute(self, data: Any, checkpoint_dir: Any, progress: Any = None) -> Any:
        """Train this run (a probe: fit the linear probe) on ``data``; its results-table record.

        What a launcher runs for this spec's task (:class:`fusionzoo.launch.base.RunTask`); an
        exception propagates (the task records it as a failed run)."""
        from fusionzoo.launch.base import run_record
        from fusionzoo.results.identity import check_regime

        if self.kind == "probe":
            from fusionzoo.baselines.linear_probe import probe_run

            return run_record(self, probe_run(self.config, data, checkpoint_dir=checkpoint_dir))
        from fusionzoo.train.trainer import train_run

        check_regime(self)  # another world size or precision would be another run: refuse it
        result = train_run(self.config, data, progress=progress, checkpoint_dir=checkpoint_dir)
        return run_record(self, result)


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
        """The backend of a dataset spec or data key (``synth:size=800|split_seed=1`` → synth)."""
        from fusionzoo.datasets.specs import DataKey

        return registry.create("dataset", DataKey.parse(dataset).name)

    def datasets(self) -> list[str]:
        """The canonical dataset specs of ``[bench] datasets`` (a ``ConfigError`` naming a bad one)."""
        from fusionzoo.datasets.specs import canonical_dataset

        out = []
        for spec in self.config.bench.datasets:
            try:
                out.append(canonical_dataset(spec))
            except (registry.RegistryError, ValueError) as exc:
                raise ConfigError(f"--datasets / [bench] datasets: {spec}: {exc}") from None
        if len(set(out)) != len(out):
            twice = sorted({d for d in out if out.count(d) > 1})
            raise ConfigError(f"--datasets / [bench] datasets: {', '.join(twice)} given twice")
        return out

    def data_keys(self) -> list[str]:
        """The data keys of the grid: every dataset × split seed × training fraction."""
        from fusionzoo.datasets.specs import data_keys

        bench = self.config.bench
        return [str(k) for k in data_keys(self.datasets(), bench.split_seeds, bench.train_fractions)]

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
        """The DataOptions of a dataset spec or data key: the spec's options over ``[data]``, its
        encoder keys over ``[encoders]``, the key's split seed and training fraction."""
        from fusionzoo.datasets.specs import DataKey

        bench, key = self.config.bench, DataKey.parse(dataset)
        return DataOptions(
            dataset=key.name,
            data_dir=bench.data_dir,
            limit=bench.limit,
            mode=bench.mode,
            data={**self.config.data, **key.backend_options()},
            encoders={**self.config.encoders.model_dump(exclude_none=True), **key.encoder_options()},
            cache_dir=bench.cache_dir,
            device="cuda" if bench.device.startswith("cuda") else "cpu",
            freeze_layers=self.config.train.freeze_layers or 0,
            split_seed=key.split_seed,
            train_fraction=key.train_fraction,
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

    def teacher(self) -> Any:
        """``--distill-from``'s :class:`~fusionzoo.bench.distill.Teacher` (``None`` without), resolved once."""
        if not self.config.bench.distill_from:
            return None
        if "_teacher" not in self.__dict__:
            from fusionzoo.bench.distill import TeacherError, resolve_teacher

            try:
                self.__dict__["_teacher"] = resolve_teacher(self.config.bench.distill_from)
            except TeacherError as exc:
                raise ConfigError(f"--distill-from / [bench] distill_from: {exc}") from None
        return self.__dict__["_teacher"]

    def _check_distill(self) -> None:
        teacher = self.teacher()
        if teacher is None:
            return
        bench = self.config.bench
        if bench.mode != "frozen":
            raise ConfigError(
                "--distill-from: distillation reads the teacher's logits over cached tokens: --mode frozen"
            )
        if bench.tune_trials:
            raise ConfigError("--distill-from with --tune-trials: the tuning trials would not distill; tune first, "
                              "then distill the chosen configuration")  # fmt: skip
        wrong = [d for d in bench.datasets if d != teacher.dataset]
        if wrong:
            raise ConfigError(
                f"--distill-from: teacher {teacher.label} in {teacher.runs_dir} was trained on {teacher.dataset}, "
                f"not {', '.join(wrong)}: a teacher's logits exist only on its own dataset"
            )

    def distill_teacher(self, dataset: str, fusion: str, fingerprint: str) -> str:
        """The teacher identity a run of ``fusion`` on ``dataset`` records (``""``: not a student), after
        checking that the teacher's data is the students' (known fingerprints only: a dry run may not
        know it yet)."""
        teacher = self.teacher()
        if teacher is None or fusion not in self.requested_fusions():
            return ""
        if fingerprint != "not-yet-known":
            from fusionzoo.bench.distill import TeacherError, check_teacher_data

            try:
                check_teacher_data(teacher, dataset, fingerprint)
            except TeacherError as exc:
                raise ConfigError(f"--distill-from / [bench] distill_from: {exc}") from None
        return teacher.identity

    def requested_fusions(self) -> list[str]:
        """The canonical fusion specs named in ``--fusions`` (without the unimodal baselines added)."""
        options = self.config.fusion_options
        return [
            canonical_spec("fusion", item.partition("@")[0], options) for item in self.config.bench.fusions
        ]

    def run_train_protocol(self, fusion: str, train_protocol: str) -> str:
        """The train protocol a run of ``fusion`` gets: ``train_protocol``, except that an automatically
        added unimodal baseline trains clean (``""``) under a training protocol it cannot take (OGM-GE
        and G-Blend balance two modalities; the explicitly requested fusions were checked up front)."""
        if not train_protocol or fusion in self.requested_fusions():
            return train_protocol
        try:
            check_train_protocol_fusion(train_protocol, fusion)
        except registry.RegistryError:
            return ""
        return train_protocol

    def validate(self) -> None:
        """Raise ``ConfigError``/``RegistryError`` for anything wrong, before any data is touched.

        What the bench session adds on top (``--tune-trials``, the ``[eval]`` protocols and reference)
        is checked by :func:`fusionzoo.bench.checks.validate_bench`, which calls this first."""
        config = self.config
        base = self.base_run_config()
        try:
            training_regime(base)  # the precision resolves on this machine's device (fp16: CUDA only)
        except ValueError as exc:
            raise ConfigError(f"--precision / [train] precision: {exc}") from None
        for dataset in self.datasets():
            self.data_options(dataset)  # the spec's options parse
            self.backend(dataset).check_options({**config.data, **self.data_options(dataset).data})
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

        check_cluster(config)
        from fusionzoo.metrics.base import column_direction

        try:
            column_direction(config.metric)
        except registry.RegistryError as exc:
            raise ConfigError(f"--metric / [bench] metric: {exc}") from None
        heads = [canonical_spec("head", h) for h in config.bench.heads]
        try:
            train_protocols = expand_train_protocols(config.bench.train_protocols)
            for fusion in self.requested_fusions():  # a training protocol refuses a fusion without branches
                for train_protocol in train_protocols:
                    check_train_protocol_fusion(train_protocol, fusion)
        except registry.RegistryError as exc:
            raise ConfigError(f"--train-protocols / [bench] train_protocols: {exc}") from None
        seen: set[tuple[str, str]] = set()
        aux_names: list[tuple[str, ...] | None] = []
        for fusion, pinned in self.pairs(self.datasets()[0]):
            for head in [pinned] if pinned else heads or [None]:
                run = base.replace(fusion=fusion, head=head)
                pair = (fusion, run.resolved_head())
                if pair not in seen:
                    seen.add(pair)
                    aux_names.append(build_once(run, pair))
        check_grid_loss_weights(base, aux_names)

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
        """Data keys × seeds × (fusion, head) runs, seed-major (every configuration's seed 0 first, so an
        interrupted grid already has a comparable leaderboard), without duplicates.

        ``fingerprints`` maps each data key (:meth:`data_keys`) to its data version (the fingerprint of the
        dataset without its variant; default: resolved now, which loads the dataset and builds its
        encoders)."""
        config = self.config
        base = self.base_run_config()
        heads = [canonical_spec("head", h) for h in config.bench.heads]
        train_protocols = expand_train_protocols(config.bench.train_protocols)
        specs: list[RunSpec] = []
        seen: set[str] = set()
        world = self.world()
        for dataset in self.data_keys():
            fingerprint = (fingerprints or {}).get(dataset) or self.inputs(dataset).version
            if self.with_probe(dataset):  # first: cheap, and the floor every fusion is compared with
                specs += self.probe_specs(dataset, fingerprint)
            for seed in config.bench.seeds:
                for fusion, pinned in self.pairs(dataset):
                    for head in [pinned] if pinned else heads or [None]:
                        for train_protocol in train_protocols:  # the train-time protocol axis
                            run = base.replace(fusion=fusion, head=head, seed=int(seed))
                            run = run.replace(head=canonical_spec("head", run.resolved_head()))
                            protocol = self.run_train_protocol(fusion, train_protocol)
                            run = run.replace(train_protocol=protocol or run.train_protocol)
                            teacher = self.distill_teacher(dataset, fusion, fingerprint)
                            run = run.replace(distill_teacher=teacher) if teacher else run
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
