"""Modality contributions (fusionzoo.evaluation.shapley): exact 2-player Shapley values from robustness
rows, on hand-worked cases."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from fusionzoo.evaluation.shapley import ShapleyError, modality_shapley, shapley_summary

IMAGE = "missing_image:imputation=mask,rates=0;1,seed=0"
TEXT = "missing_text:imputation=mask,rates=0;1,seed=0"
BOTH_RANDOM = "missing_both_random:imputation=mask,rates=0;1,seed=0"


def row(run: str, fusion: str, protocol: str, level: float, accuracy: float, seed: int = 0) -> dict:
    return {
        "run_id": run, "config_id": f"c-{fusion}", "dataset": "s", "fusion": fusion, "head": "linear",
        "seed": seed, "protocol": protocol, "protocol_name": protocol.split(":")[0], "stage": "test",
        "level": level, "train_protocol": "", "test_accuracy": accuracy, "test_ece": 0.1,
    }  # fmt: skip


def rows() -> pd.DataFrame:
    return pd.DataFrame(
        [
            # film: clean 0.80, text removed 0.70 = v({img}), image removed 0.50 = v({txt})
            row("r1", "film", IMAGE, 0.0, 0.80), row("r1", "film", IMAGE, 1.0, 0.50),
            row("r1", "film", TEXT, 0.0, 0.80), row("r1", "film", TEXT, 1.0, 0.70),
            row("r1", "film", BOTH_RANDOM, 1.0, 0.60),  # one modality per sample: not v(∅)
            row("r1", "film", "feature_noise:sigmas=0;1", 1.0, 0.05),
            # image_only: ignores the text; without its image it is at chance
            row("r2", "image_only", IMAGE, 0.0, 0.60), row("r2", "image_only", IMAGE, 1.0, 0.10),
            row("r2", "image_only", TEXT, 1.0, 0.60),
            # film, seed 1: no missing_text evaluation
            row("r3", "film", IMAGE, 0.0, 0.82, seed=1), row("r3", "film", IMAGE, 1.0, 0.52, seed=1),
        ]
    )  # fmt: skip


def test_shapley_values_on_a_hand_case():
    table = modality_shapley(rows(), chance=0.10).set_index("run_id")
    film = table.loc["r1"]
    # φ_img = ½[(0.70 − 0.10) + (0.80 − 0.50)] = 0.45;  φ_txt = ½[(0.50 − 0.10) + (0.80 − 0.70)] = 0.25
    assert (film["v_both"], film["v_image"], film["v_text"], film["v_empty"]) == (0.80, 0.70, 0.50, 0.10)
    assert film["phi_image"] == pytest.approx(0.45) and film["phi_text"] == pytest.approx(0.25)
    assert film["phi_image"] + film["phi_text"] == pytest.approx(
        film["v_both"] - film["v_empty"]
    )  # efficiency
    assert film["imbalance"] == pytest.approx(0.20 / 0.70) and film["image_share"] == pytest.approx(
        0.45 / 0.70
    )
    image_only = table.loc["r2"]  # φ_txt = ½[(0.10 − 0.10) + (0.60 − 0.60)] = 0
    assert image_only["phi_image"] == pytest.approx(0.5) and image_only["phi_text"] == pytest.approx(0.0)
    assert image_only["imbalance"] == 1.0 and image_only["image_share"] == 1.0
    incomplete = table.loc["r3"]
    assert incomplete["missing"] == "v_image" and math.isnan(incomplete["phi_image"])


def test_chance_per_dataset_or_column_and_a_protocol_removing_both():
    by_dataset = modality_shapley(rows(), chance={"s": 0.10})
    by_column = modality_shapley(rows().assign(chance=0.10))
    pd.testing.assert_frame_equal(by_dataset, by_column)
    both = pd.concat([rows(), pd.DataFrame([row("r1", "film", "drop_all", 1.0, 0.30)])])
    film = modality_shapley(both, both="drop_all").set_index("run_id").loc["r1"]
    assert film["v_empty"] == 0.30 and film["phi_image"] + film["phi_text"] == pytest.approx(0.50)


def test_summary_per_configuration():
    extra = pd.DataFrame(
        [row("r4", "film", p, lv, a, seed=2) for p, lv, a in
         ((IMAGE, 0.0, 0.90), (IMAGE, 1.0, 0.60), (TEXT, 1.0, 0.70))]
    )  # fmt: skip
    summary = shapley_summary(modality_shapley(pd.concat([rows(), extra]), chance=0.10)).set_index("fusion")
    film = summary.loc["film"]
    # r4: φ_img = ½[(0.70 − 0.10) + (0.90 − 0.60)] = 0.45, φ_txt = ½[(0.60 − 0.10) + (0.90 − 0.70)] = 0.35
    assert film["runs"] == 2 and film["incomplete"] == 1
    assert film["phi_image"] == pytest.approx(0.45) and film["phi_text"] == pytest.approx(0.30)
    assert film["phi_text_std"] == pytest.approx(pd.Series([0.25, 0.35]).std())
    assert summary.loc["image_only", "runs"] == 1 and math.isnan(summary.loc["image_only", "phi_image_std"])


def test_bad_input_is_named():
    with pytest.raises(ShapleyError, match="needs the chance level"):
        modality_shapley(rows())
    with pytest.raises(ShapleyError, match="lower-is-better"):
        modality_shapley(rows(), chance=0.1, metric="test_ece")
    with pytest.raises(ShapleyError, match="lack test_top5"):
        modality_shapley(rows(), chance=0.1, metric="test_top5")
    with pytest.raises(ShapleyError, match="no chance level for dataset 's'"):
        modality_shapley(rows(), chance={"other": 0.1})
    other = IMAGE.replace("mask", "zeros")
    ambiguous = pd.concat([rows(), pd.DataFrame([row("r1", "film", other, 1.0, 0.4)])])
    with pytest.raises(ShapleyError, match="several missing_image specs"):
        modality_shapley(ambiguous, chance=0.1)
    chosen = modality_shapley(ambiguous, chance=0.1, image=other).set_index("run_id")
    assert chosen.loc["r1", "v_text"] == 0.4
