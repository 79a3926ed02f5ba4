"""End to end on the embedded dataset: every run gets ``test_ece``/``val_ece``, ``fusionzoo eval`` gets
``test_ece`` at every robustness level, and the robustness rows give modality Shapley values."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from fusionzoo.cli.bench import bench
from fusionzoo.cli.eval import eval_cmd
from fusionzoo.evaluation.shapley import modality_shapley, shapley_summary
from fusionzoo.evaluation.tables import EvalTables
from fusionzoo.results.cross_dataset import chance_accuracy
from fusionzoo.results.store import CLASSES_FILE, ResultsStore, read_table

pytestmark = pytest.mark.slow  # benches and evaluates on the embedded dataset

BENCH = ["--fusions", "concat_mlp", "--seeds", "0", "--epochs", "2", "--dim", "16", "--batch-size", "64",
         "--data-option", "size=600", "--device", "cpu"]  # fmt: skip


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONZOO_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("FUSIONZOO_CACHE", raising=False)
    out = tmp_path / "runs"
    result = CliRunner().invoke(bench, [*BENCH, "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    protocols = "missing_image:rates=0;0.5;1,missing_text:rates=0;1"
    result = CliRunner().invoke(eval_cmd, [str(out), "--protocols", protocols], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return ResultsStore(out)


def test_ece_per_run_and_per_level_and_shapley_from_the_rows(runs):
    results = runs.load()
    assert {"test_ece", "val_ece"} <= set(results.columns)
    assert results["test_ece"].between(0, 1).all() and results["val_ece"].between(0, 1).all()
    rows = EvalTables(runs).robustness()
    assert rows["test_ece"].notna().all()  # every (protocol, level) row, as every prediction metric
    clean = rows[rows["level"] == 0].merge(
        results[["run_id", "test_ece"]], on="run_id", suffixes=("", "_run")
    )
    assert np.array_equal(clean["test_ece"], clean["test_ece_run"])

    classes = read_table(runs.dir / CLASSES_FILE)
    chance = chance_accuracy(classes).set_index("data_fingerprint")["majority"]
    by_dataset = {
        d: float(chance[f]) for d, f in results[["dataset", "data_fingerprint"]].drop_duplicates().values
    }
    table = modality_shapley(rows, chance=by_dataset)
    assert len(table) == len(results) and (table["missing"] == "").all()
    np.testing.assert_allclose(table["phi_image"] + table["phi_text"], table["v_both"] - table["v_empty"])
    by_fusion = table.set_index("fusion")
    # text_only ignores the image: removing it changes nothing, so φ_img = ½ (v({img}) − chance) only
    text_only = by_fusion.loc["text_only"]
    assert text_only["v_text"] == text_only["v_both"]
    assert text_only["phi_image"] == pytest.approx(0.5 * (text_only["v_image"] - text_only["v_empty"]))
    assert set(shapley_summary(table)["fusion"]) == {"concat_mlp", "image_only", "text_only"}
