"""``fusionzoo bench`` end to end on each published-format backend's example files, with tiny encoders
(1 epoch, dim 16): the dataset's rows reach the results table; Hateful Memes ranks by AUROC."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from click.testing import CliRunner

from fusionzoo.cli import main
from fusionzoo.registry import create

BACKENDS = ("hateful_memes", "food101", "n24news", "hf")


def data_flags(name: str, folder) -> list[str]:
    options = create("dataset", name).example(folder)
    options.pop("data_dir", None)
    return [x for key, value in options.items() for x in ("--data-option", f"{key}={value}")]


@pytest.mark.slow
@pytest.mark.parametrize("name", BACKENDS)
def test_bench_runs_end_to_end_on_the_example_files(name, tmp_path, tiny_model_dirs):
    metric = ["--metric", "auroc"] if name == "hateful_memes" else []
    args = [
        "bench", "--dataset", name, *data_flags(name, tmp_path / "files"), "--data-dir", str(tmp_path / "data"),
        "--image-encoder", f"timm:{tiny_model_dirs['image']}", "--text-encoder", f"hf:{tiny_model_dirs['text']}",
        "--fusions", "concat_mlp", "--seeds", "0", "--epochs", "1", "--dim", "16", "--batch-size", "16",
        "--no-unimodal", "--no-probe", "--out", str(tmp_path / "runs"), *metric,
    ]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(tmp_path / "runs" / "results.parquet")
    assert set(frame["dataset"]) == {name} and list(frame["status"]) == ["ok"]
    assert 0 <= frame["test_accuracy"].iloc[0] <= 1
    if name == "hateful_memes":  # binary: AUROC beside accuracy, and the leaderboard ranks by it
        assert "test_auroc" in result.output
        assert 0 <= frame["test_auroc"].iloc[0] <= 1 and math.isfinite(frame["val_auroc"].iloc[0])
