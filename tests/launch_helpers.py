"""Shared pieces of the launcher tests: a tiny grid of tasks, a recording driver, process helpers."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TOKENS = dict(num_classes=3, image_tokens=2, image_dim=8, text_dim=8, max_text=3)
TINY_DATA = ["size=240", "n_colours=2", "n_shapes=1", "n_genders=1", "n_materials=2"]


def tiny_bench_args(data_dir: Path, out: Path, *extra: str) -> list[str]:
    """``fusionzoo bench`` arguments of a 6-run grid (concat_mlp, film × 3 seeds) on the tiny dataset."""
    args = ["bench", "--data-dir", str(data_dir)]
    for option in TINY_DATA:
        args += ["--data-option", option]
    return [
        *args, "--fusions", "concat_mlp,film", "--seeds", "0,1,2", "--epochs", "3", "--dim", "16",
        "--batch-size", "16", "--no-unimodal", "--out", str(out), *extra,
    ]  # fmt: skip


def tiny_tasks(seeds=(0, 1, 2, 3), epochs: int = 2, rows: int = 48, fusion: str = "concat_mlp"):
    """``(tasks, {dataset: data})``: ``concat_mlp + linear`` at D = 8 on synthetic token features."""
    from fusionzoo.experiment import RunSpec
    from fusionzoo.launch.base import RunTask
    from fusionzoo.testing.token_features import synthetic_features
    from fusionzoo.train.config import RunConfig

    data = synthetic_features(rows, 16, 16, **TOKENS)
    base = RunConfig(
        fusion=fusion, head="linear", dim=8, epochs=epochs, batch_size=8, patience=0, device="cpu"
    )
    specs = [RunSpec.create("tiny", base.replace(seed=s), "tiny") for s in seeds]
    return [RunTask(spec, None) for spec in specs], {"tiny": data}


@dataclass
class RecordingDriver:
    """Keeps every record, the progress events per run and the launcher's notes."""

    records: list[Any] = field(default_factory=list)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    on_progress: Any = None

    def progress(self, task: Any, event: dict[str, Any]) -> None:
        self.events.setdefault(task.key, []).append(event)
        if self.on_progress is not None:
            self.on_progress(task, event)

    def finished(self, record: Any) -> None:
        self.records.append(record)

    def note(self, message: str) -> None:
        self.notes.append(message)


def metric_columns(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items() if k.startswith(("test_", "val_"))}


def assert_same_records(records: list[Any], reference: dict[str, Any]) -> None:
    """Every record equals the reference record of its run bit for bit (NaN == NaN)."""
    assert sorted(r.spec.run_id for r in records) == sorted(reference)
    for record in records:
        expected = reference[record.spec.run_id]
        assert record.status == expected.status
        np.testing.assert_equal(metric_columns(record.row), metric_columns(expected.row))
        np.testing.assert_array_equal(record.predictions, expected.predictions)


def children_of(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (Linux /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(condition, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def tiny_encoders(root):
    """A tiny ViT and a tiny BERT saved under ``root`` (local folders, no download) and their splits."""
    from fusionzoo.encoders.image import create_image_encoder
    from fusionzoo.encoders.text import create_text_encoder
    from fusionzoo.testing.tiny_encoders import save_tiny_image_model, save_tiny_text_model
    from fusionzoo.testing.tiny_splits import splits_from_csv, write_tiny_glami

    splits = splits_from_csv(write_tiny_glami(root / "glami", n=48))
    image = create_image_encoder(f"timm:{save_tiny_image_model(root / 'vit')}")
    text = create_text_encoder(f"hf:{save_tiny_text_model(root / 'bert', splits.train['text'].tolist())}")
    return splits, image, text


def cached_feature_data(root):
    """FeatureData whose three splits are real feature-cache entries under ``root / 'cache'``."""
    import io

    from rich.console import Console

    from fusionzoo.encoders.cache import encode_splits
    from fusionzoo.train.inputs import FeatureData

    splits, image, text = tiny_encoders(root)
    quiet = Console(file=io.StringIO())
    features = encode_splits(
        splits, image, text, root / "cache", batch_size=8, num_workers=0, progress=False, console=quiet
    )
    return FeatureData(
        features["train"], features["val"], features["test"], num_classes=splits.num_classes,
        classes=list(splits.classes), name="tiny", fingerprint="tiny-cache",
    )  # fmt: skip


@dataclass
class EchoRecord:
    key: str
    value: int
    pid: int
    status: str = "ok"
    error: str = ""


@dataclass
class EchoTask:
    """A task of a kind no launcher knows: ``value`` times its input, and the pid that computed it."""

    value: int
    input: str | None = "factor"
    checkpoint_dir: Path | None = None
    whole_gpu: bool = False
    sleep: float = 0.0

    @property
    def key(self) -> str:
        return f"echo-{self.value}"

    @property
    def label(self) -> str:
        return f"echo {self.value}"

    def execute(self, context: Any) -> EchoRecord:
        if context.progress is not None:
            context.progress({"event": "echo", "value": self.value})
        time.sleep(self.sleep)
        factor = 1 if context.data is None else int(context.data)
        return EchoRecord(self.key, self.value * factor, os.getpid())

    def failed(self, error: str) -> EchoRecord:
        return EchoRecord(self.key, 0, 0, "failed", error)

    def discard(self) -> None:
        pass

    def absolute(self) -> EchoTask:
        return self

    def with_checkpoint(self, folder: Path | None) -> EchoTask:
        return self
