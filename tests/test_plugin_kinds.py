"""A throw-away plugin of every kind, from files: the worked examples of docs/architecture.md, extracted
verbatim, loaded with ``--plugin``, contract-checked, listed, and used together in one ``fusionzoo bench``."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from fusionzoo import registry
from fusionzoo.cli import main
from fusionzoo.testing import check_plugin

DOCS = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
KINDS = {
    "caption_folder.py": ("dataset", "caption_folder"),
    "log_loss.py": ("metric", "log_loss"),
    "mismatched_pairs.py": ("protocol", "mismatched_pairs"),
    "seed_table.py": ("reporter", "seed_table"),
    "retry.py": ("launcher", "retry"),
}


@pytest.fixture
def plugin_files(tmp_path, clean_registry):
    """The docs' example files written to disk (one per kind), unregistered again after the test."""
    blocks = dict(re.findall(r"```python\n# file: (\S+)\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S))
    assert set(blocks) == set(KINDS), f"docs/architecture.md examples: {sorted(blocks)}"
    folder = tmp_path / "plugins"
    folder.mkdir()
    paths = {}
    for name, code in blocks.items():
        paths[name] = folder / name
        paths[name].write_text(code, encoding="utf-8")
    return paths


def plugin_flags(paths):
    return [x for path in paths.values() for x in ("--plugin", str(path))]


def rows(output):
    return {line.split("│")[1].strip(): line for line in output.splitlines() if line.startswith("│ ")}


def test_each_example_is_listed_and_meets_its_contract(plugin_files, tmp_path):
    for file, (kind, name) in KINDS.items():
        result = CliRunner().invoke(main, ["list", f"{kind}s", "--plugin", str(plugin_files[file])])
        assert result.exit_code == 0, result.output
        line = rows(result.output)[name]
        assert "local:" in line and "error" not in line, line
        check_plugin(kind, name, tmp_path / f"contract-{name}")
    protocols = rows(CliRunner().invoke(main, ["list", "protocols"]).output)
    assert "│ test " in protocols["mismatched_pairs"] and "0, 0.25, 0.5, 1" in protocols["mismatched_pairs"]
    metrics = rows(CliRunner().invoke(main, ["list", "metrics", "log*"]).output)
    assert set(metrics) == {"log_loss"} and "│ min " in metrics["log_loss"]
    datasets = rows(CliRunner().invoke(main, ["list", "datasets"]).output)
    assert "│ root " in datasets["caption_folder"]


def test_the_protocol_example_moves_texts_between_exactly_the_chosen_samples(plugin_files):
    import torch

    from fusionzoo.testing.protocol_contract import example_batch

    registry.load_plugin(str(plugin_files["mismatched_pairs.py"]))
    protocol = registry.create("protocol", "mismatched_pairs:rates=0;0.5;1")
    assert protocol.levels() == [0.0, 0.5, 1.0]
    batch = example_batch(seed=3)
    for level, moved in ((0.5, 3), (1.0, 6)):
        out = protocol.apply(batch, level, torch.Generator().manual_seed(0))
        changed = [i for i in range(6) if not torch.equal(out["text"][i], batch["text"][i])]
        assert len(changed) == moved, (level, changed)
        texts = {tuple(batch["text"][i].flatten().tolist()) for i in range(6)}
        assert all(tuple(out["text"][i].flatten().tolist()) in texts for i in changed)  # another sample's
        assert torch.equal(out["image"], batch["image"]) and torch.equal(out["label"], batch["label"])


@pytest.mark.slow
def test_one_bench_uses_the_dataset_metric_and_launcher_and_the_reporter_renders_it(
    plugin_files, tmp_path, monkeypatch
):
    from fusionzoo.report.base import ResultsView
    from fusionzoo.results.store import ResultsStore
    from fusionzoo.testing.tiny_encoders import save_tiny_image_model, save_tiny_text_model

    for path in plugin_files.values():
        registry.load_plugin(str(path))
    root = tmp_path / "captions"
    registry.create("dataset", "caption_folder").example(root)
    texts = [p.read_text() for p in sorted(root.glob("train/*/*.txt"))]
    image_model = save_tiny_image_model(tmp_path / "vit")
    text_model = save_tiny_text_model(tmp_path / "bert", texts)

    launcher = registry.get_entry("launcher", "retry").obj
    launched: list[int] = []
    original_run = launcher.run

    def counting_run(self, tasks, data_for, driver):
        launched.append(len(tasks))
        return original_run(self, tasks, data_for, driver)

    monkeypatch.setattr(launcher, "run", counting_run)
    args = [
        *plugin_flags(plugin_files), "--dataset", "caption_folder", "--data-option", f"root={root}",
        "--data-dir", str(tmp_path / "data"), "--image-encoder", f"timm:{image_model}",
        "--text-encoder", f"hf:{text_model}", "--fusions", "concat_mlp", "--seeds", "0,1", "--epochs", "2",
        "--dim", "16", "--batch-size", "16", "--no-unimodal", "--no-probe", "--launcher", "retry:attempts=2",
        "--metric", "log_loss", "--out", str(tmp_path / "runs"),
    ]  # fmt: skip
    result = CliRunner().invoke(main, ["bench", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert launched == [2]  # both runs went through the plugin launcher
    text = " ".join(result.output.split())  # the leaderboard title wraps at the terminal width
    assert "test_log_loss (%)" in text and "lower is better" in text

    frame = pd.read_parquet(tmp_path / "runs" / "results.parquet")
    assert set(frame["dataset"]) == {"caption_folder"} and set(frame["status"]) == {"ok"}
    assert {"test_log_loss", "val_log_loss", "test_accuracy"} <= set(frame.columns)
    assert all(math.isfinite(v) and v > 0 for v in frame["test_log_loss"])

    view = ResultsView.of(ResultsStore(tmp_path / "runs"), metric="test_log_loss")
    table = pd.read_csv(pd.io.common.StringIO(registry.create("reporter", "seed_table").render(view, "csv")))
    assert list(table["fusion"]) == ["concat_mlp"]
    by_seed = frame.set_index("seed")["test_log_loss"]
    assert table.loc[0, "0"] == pytest.approx(by_seed[0]) and table.loc[0, "1"] == pytest.approx(by_seed[1])

    again = CliRunner().invoke(main, ["bench", *args], catch_exceptions=False)
    assert again.exit_code == 0 and "2 finished run(s) reused" in again.output and launched == [2, 0]


def test_an_unknown_launcher_is_a_usage_error_before_any_data(tmp_path):
    result = CliRunner().invoke(main, ["bench", "--launcher", "locall", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 2 and "did you mean 'local'" in result.output
    assert not (tmp_path / "d").exists()
