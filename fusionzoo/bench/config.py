"""Benchmark settings: built-in quick defaults, TOML presets (``benchmarks/*.toml``) and CLI overrides.

A preset has these tables (every key optional)::

    [bench]                       # the grid and where it runs
    datasets = ["synth"]          # or dataset = "synth"
    fusions = ["fluid", "film", "concat_mlp"]
    heads = []                    # empty: each fusion's natural head (its default_head)
    seeds = [0, 1, 2]
    with_unimodal = true          # add image_only and text_only baselines
    mode = "frozen"               # or "finetune"
    metric = "test_accuracy"      # leaderboard metric (any test_/val_ column)
    out = "runs/quick"
    data_dir = "..."              # dataset root (default: the dataset's own default)
    limit = 2000                  # subsample the training split (val/test scaled alike)
    device = "auto"

    [data]                        # extra options passed to fusionzoo.data.load_dataset
    [encoders]                    # image = "timm:...", text = "hf:...", batch_size, text_max_length
    [train]                       # any fusionzoo.train.config.RunConfig field: dim, epochs, lr, ...
    [fusion_options.fluid]        # hyperparameters a fusion gets in this preset unless its spec sets them
    queries = 8                   # (the leaderboard shows the resulting spec, e.g. fluid:layers=1,queries=8)
    [paper]                       # published numbers, for the report only (ignored by the runner)

Precedence: the built-in defaults < the preset < flags given on the command line.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusionzoo.train.config import RunConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["QUICK", "BenchConfig", "BenchConfigError", "load_preset"]

UNIMODAL = ("image_only", "text_only")
TABLES = ("bench", "data", "encoders", "train", "fusion_options", "paper")


class BenchConfigError(ValueError):
    """A preset file or a combination of settings is wrong; the message names the key and the fix."""


@dataclass
class BenchConfig:
    """Everything ``fusionzoo bench`` needs (see the module docstring for the meaning of each key)."""

    datasets: list[str] = field(default_factory=lambda: ["synth"])
    fusions: list[str] = field(default_factory=lambda: ["fluid", "film", "concat_mlp"])
    heads: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    with_unimodal: bool = True
    mode: str = "frozen"
    metric: str = "test_accuracy"
    out: str = "runs/quick"
    data_dir: str | None = None
    limit: int | None = None
    device: str = "auto"
    data: dict[str, Any] = field(default_factory=dict)
    encoders: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    fusion_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    paper: dict[str, Any] = field(default_factory=dict)
    source: str = "built-in quick defaults"

    def run_config(self, **overrides: Any) -> RunConfig:
        """The base RunConfig of every run of the grid (fusion/head/seed are set per run)."""
        values = {**self.train, "mode": self.mode, "device": self.device, **overrides}
        try:
            return RunConfig.from_dict(values)
        except ValueError as exc:
            raise BenchConfigError(f"{self.source}: [train] {exc}") from exc

    def replace(self, **changes: Any) -> BenchConfig:
        return dataclasses.replace(copy.deepcopy(self), **changes)


# The quick preset == benchmarks/quick.toml (a test keeps the two identical). Tuned so that the README's
# `fusionzoo bench --fusions fluid,film,concat_mlp` finishes in < 5 min on 2 CPU cores, first run
# included, with the best fusion ≥ 8 accuracy points above the best unimodal baseline (docs/benchmarking.md).
QUICK = BenchConfig(
    datasets=["synth"],
    fusions=["fluid", "film", "concat_mlp"],
    heads=[],
    seeds=[0, 1, 2],
    with_unimodal=True,
    mode="frozen",
    metric="test_accuracy",
    out="runs/quick",
    train={
        "dim": 64,
        "epochs": 15,
        "batch_size": 64,
        "lr": 2e-3,
        "weight_decay": 0.01,
        "warmup": 0.05,
        "grad_clip": 1.0,
        "patience": 3,
        "metric": "accuracy",
    },
    # FLUID at its defaults (32 queries, 2 Q-Former blocks per modality) trains ~100 s per seed here;
    # the quick preset runs a scaled-down FLUID so the whole grid stays under 5 minutes on 2 cores
    fusion_options={"fluid": {"queries": 8, "layers": 1}},
    source="built-in quick defaults",
)


def _expect(source: str, table: str, key: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BenchConfigError(f"{source}: [{table}] {key} must be {what}, got {value!r}")
    return value


def _str_list(source: str, key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BenchConfigError(f"{source}: [bench] {key} must be a list of strings, got {value!r}")
    return list(value)


def load_preset(path: str | Path, base: BenchConfig | None = None) -> BenchConfig:
    """Read a TOML preset on top of ``base`` (default: the quick defaults)."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise BenchConfigError(
            f"config file {path} not found (presets live in benchmarks/, e.g. benchmarks/quick.toml)"
        )
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BenchConfigError(f"{source} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - set(TABLES))
    if unknown:
        raise BenchConfigError(
            f"{source}: unknown table(s) {', '.join(unknown)}; expected {', '.join(TABLES)}"
        )
    config = (base or QUICK).replace(source=source)
    bench = dict(data.get("bench", {}))
    if "dataset" in bench and "datasets" in bench:
        raise BenchConfigError(f"{source}: [bench] give either dataset or datasets, not both")
    if "dataset" in bench:
        bench["datasets"] = bench.pop("dataset")
    for key, value in bench.items():
        if key in ("datasets", "fusions", "heads"):
            setattr(config, key, _str_list(source, key, value))
        elif key == "seeds":
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
            ):
                raise BenchConfigError(
                    f"{source}: [bench] seeds must be a list of integers >= 0, got {value!r}"
                )
            config.seeds = list(value)
        elif key == "with_unimodal":
            config.with_unimodal = _expect(source, "bench", key, value, bool, "true or false")
        elif key in ("mode", "metric", "out", "device", "data_dir"):
            setattr(config, key, _expect(source, "bench", key, value, str, "a string"))
        elif key == "limit":
            config.limit = _expect(source, "bench", key, value, int, "an integer")
        else:
            valid = (
                "datasets, fusions, heads, seeds, with_unimodal, mode, metric, out, data_dir, limit, device"
            )
            raise BenchConfigError(f"{source}: [bench] unknown key '{key}'; valid keys: {valid}")
    if "train" in data:
        train = dict(data["train"])
        names = {f.name for f in dataclasses.fields(RunConfig)} - {"fusion", "head", "seed"}
        bad = sorted(set(train) - names)
        if bad:
            raise BenchConfigError(
                f"{source}: [train] unknown key(s) {', '.join(bad)}; valid: {', '.join(sorted(names))}"
            )
        config.train = train  # a preset's [train] replaces the defaults' (RunConfig defaults fill the rest)
    if "fusion_options" in data:
        options = data["fusion_options"]
        if not all(isinstance(v, dict) for v in options.values()):
            raise BenchConfigError(
                f"{source}: [fusion_options] must hold one table per fusion, e.g. [fusion_options.fluid]"
            )
        config.fusion_options = {k: dict(v) for k, v in options.items()}
    for table in ("data", "encoders", "paper"):
        if table in data:
            setattr(config, table, dict(data[table]))
    config.run_config()  # validate now, with the file name in the message
    return config
