"""Robustness summaries and Pareto fronts on hand-made curves (MultiBench's definitions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusionzoo.metrics.base import CurveContext, column_direction
from fusionzoo.registry import create
from fusionzoo.robustness import (
    curve_table,
    effective_robustness,
    maxmin_normalise,
    pareto_front,
    relative_robustness,
)

LEVELS = [round(0.1 * i, 1) for i in range(11)]


def multibench_relative(values):  # MultiBench eval_scripts/robustness.py, relative_robustness_helper
    return sum((values[i] + values[i + 1]) * 0.1 / 2 for i in range(len(values) - 1))


def test_relative_robustness_is_the_trapezoid_area_on_a_unit_level_axis():
    assert relative_robustness(LEVELS, [0.8] * 11) == pytest.approx(0.8)  # flat: the clean score
    assert relative_robustness(LEVELS, [1 - x for x in LEVELS]) == pytest.approx(0.5)
    curve = [0.9, 0.85, 0.8, 0.7, 0.65, 0.5, 0.45, 0.3, 0.2, 0.15, 0.1]
    assert relative_robustness(LEVELS, curve) == pytest.approx(multibench_relative(curve))
    # a 0..5 severity grid is rescaled to [0, 1]: the same curve gives the same area
    assert relative_robustness([0, 1, 2, 3, 4, 5], [1, 0.8, 0.6, 0.4, 0.2, 0]) == pytest.approx(0.5)
    assert relative_robustness([0, 0.5, 1], [0.5, 0.9, 0.1]) == pytest.approx(
        0.5 * (0.5 + 0.9) / 2 + 0.5 * (0.9 + 0.1) / 2
    )
    with pytest.raises(ValueError):
        relative_robustness([0], [1.0])
    with pytest.raises(ValueError, match="level 0"):  # 0.5 is not the clean score: no rescaling from it
        relative_robustness([0.5, 1], [0.8, 0.4])


def test_effective_robustness_is_the_mean_gap_to_the_shifted_reference():
    reference = [0.9, 0.7, 0.5]
    assert effective_robustness([0, 0.5, 1], [0.6, 0.4, 0.2], reference) == pytest.approx(0.0)  # same drop
    # degrades by 0.1 per level instead of 0.2: +0.1 at level 0.5, +0.2 at level 1 -> mean 0.15
    assert effective_robustness([0, 0.5, 1], [0.6, 0.5, 0.4], reference) == pytest.approx(0.15)
    assert effective_robustness([0, 0.5, 1], [0.9, 0.5, 0.1], reference) == pytest.approx(-0.3)


def test_effective_robustness_does_not_grow_with_the_level_grid():
    """A run that keeps a gap of +0.2 over the shifted reference at every perturbed level has ER 0.2 on a
    3-level and on an 11-level grid (MultiBench's sum gives 0.2·2 and 0.2·10: K × ours)."""

    def run(x):
        return 0.8 if x == 0 else 0.7

    def ref(x):
        return 0.9 if x == 0 else 0.6

    coarse = effective_robustness([0, 0.5, 1], [run(x) for x in (0, 0.5, 1)], [ref(x) for x in (0, 0.5, 1)])
    fine = effective_robustness(LEVELS, [run(x) for x in LEVELS], [ref(x) for x in LEVELS])
    assert coarse == pytest.approx(fine) == pytest.approx(0.2)
    multibench = sum(run(x) - (ref(x) - ref(0) + run(0)) for x in LEVELS)  # effective_robustness_helper
    assert multibench == pytest.approx(10 * fine)


def test_table_normalisation_is_max_min():
    out = maxmin_normalise(pd.Series([0.2, 0.6, 1.0], index=list("abc")))
    assert out.tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert maxmin_normalise([0.3, 0.3]).isna().all()


def test_registered_summary_metrics_compute_the_same_and_rank_highest_first():
    ctx = CurveContext(
        np.array([0, 0.5, 1.0]), np.array([0.6, 0.5, 0.4]), "missing_image", np.array([0.9, 0.7, 0.5])
    )
    assert create("metric", "relative_robustness").compute(ctx) == {
        "rel_robust_missing_image": pytest.approx(0.5)
    }
    assert create("metric", "effective_robustness").compute(ctx) == {
        "eff_robust_missing_image": pytest.approx(0.15)
    }
    assert column_direction("rel_robust_missing_image") == "max"
    assert column_direction("test_gflops_forward") == "min" and column_direction("throughput") == "max"


def test_curve_table_uses_the_reference_fusions_mean_curve():
    rows = []
    for fusion, seed, curve in (
        ("concat_mlp", 0, [0.9, 0.7, 0.5]),
        ("concat_mlp", 1, [0.7, 0.5, 0.3]),  # reference mean: 0.8, 0.6, 0.4
        ("film", 0, [0.8, 0.7, 0.6]),
    ):
        for level, acc in zip([0.0, 0.5, 1.0], curve, strict=True):
            rows.append(
                {"run_id": f"{fusion}{seed}", "config_id": fusion, "dataset": "d", "fusion": fusion,
                 "head": "mlp", "seed": seed, "protocol": "missing_image:imputation=mask,seed=0",
                 "train_protocol": "", "level": level, "test_accuracy": acc}
            )  # fmt: skip
    same = {r["run_id"]: "settings" for r in rows}
    table = curve_table(pd.DataFrame(rows), settings=same).set_index("run_id")
    assert table.loc["film0", "eff_robust"] == pytest.approx((0.1 + 0.2) / 2)
    assert table.loc["concat_mlp0", "eff_robust"] == pytest.approx(0.0)
    assert table.loc["film0", "rel_robust"] == pytest.approx(0.7)
    assert table.loc["film0", "reference_label"] == "concat_mlp + mlp"
    assert np.isnan(curve_table(pd.DataFrame(rows), reference="fluid", settings=same)["eff_robust"]).all()


def _row(run_id, fusion, curve, levels=(0.0, 0.5, 1.0), **extra):
    return [
        {"run_id": run_id, "config_id": extra.get("config_id", run_id), "dataset": "d", "fusion": fusion,
         "head": extra.get("head", "mlp"), "seed": extra.get("seed", 0), "protocol": "missing_image",
         "train_protocol": extra.get("train_protocol", ""), "level": level, "test_accuracy": value}
        for level, value in zip(levels, curve, strict=True)
    ]  # fmt: skip


def test_each_run_is_compared_with_the_reference_of_its_own_settings():
    """ER of a run uses only the reference configuration with its settings (data fingerprint, head, dim,
    tuned or not): adding concat_mlp runs of other settings, or a robust-trained one, changes nothing."""
    rows = [
        *_row("film-a", "film", [0.8, 0.7, 0.6]),
        *_row("ref-a", "concat_mlp", [0.9, 0.7, 0.5]),  # same settings as film-a: gaps +0.1, +0.2
        *_row("film-b", "film", [0.8, 0.7, 0.6]),
        *_row("ref-b", "concat_mlp", [0.9, 0.85, 0.8]),  # film-b's: gaps -0.05, -0.1
    ]
    settings = {"film-a": "A", "ref-a": "A", "film-b": "B", "ref-b": "B"}
    table = curve_table(pd.DataFrame(rows), settings=settings).set_index("run_id")
    assert table.loc["film-a", "eff_robust"] == pytest.approx(0.15)
    assert table.loc["film-b", "eff_robust"] == pytest.approx(-0.075)
    assert table.loc["film-a", "reference_config"] == "ref-a"
    more = [
        *rows,
        *_row("ref-c", "concat_mlp", [0.5, 0.1, 0.0]),  # other settings (e.g. another dim or data)
        *_row("robust", "concat_mlp", [0.9, 0.9, 0.9], train_protocol="missing_image@0.5"),  # not clean
    ]
    again = curve_table(pd.DataFrame(more), settings={**settings, "ref-c": "C", "robust": "A"})
    assert again.set_index("run_id").loc["film-a", "eff_robust"] == pytest.approx(0.15)
    # a run whose settings have no reference run, or two reference configurations: no ER
    alone = curve_table(pd.DataFrame(rows), settings={**settings, "film-a": "Z"}).set_index("run_id")
    assert np.isnan(alone.loc["film-a", "eff_robust"])
    two = [*rows, *_row("ref-a2", "concat_mlp:hidden_mult=4", [0.9, 0.9, 0.9])]
    pick = curve_table(pd.DataFrame(two), settings={**settings, "ref-a2": "A"}).set_index("run_id")
    assert pick.loc["film-a", "reference_config"] == "ref-a"  # the spec that is exactly the reference
    named = curve_table(
        pd.DataFrame(two), reference="concat_mlp:hidden_mult=4", settings={**settings, "ref-a2": "A"}
    ).set_index("run_id")
    assert named.loc["film-a", "reference_config"] == "ref-a2"


def test_settings_key_separates_heads_dims_data_and_tuned_runs():
    from fusionzoo.robustness import TUNED_FIELDS, settings_key
    from fusionzoo.train.config import RunConfig
    from fusionzoo.tune.space import TRAIN_FIELD_OF

    assert set(TUNED_FIELDS) == set(TRAIN_FIELD_OF.values())  # what bench --tune-trials sets
    base = RunConfig(fusion="film", dim=64).to_dict()
    reference = {**base, "fusion": "concat_mlp", "seed": 3, "device": "cuda"}
    assert settings_key(base, "fp") == settings_key(reference, "fp")
    assert settings_key(base, "fp") != settings_key(base, "fp2")
    assert settings_key(base, "fp") != settings_key({**reference, "dim": 128}, "fp")
    assert settings_key(base, "fp") != settings_key({**reference, "head": "moe"}, "fp")
    assert settings_key(base, "fp") != settings_key({**reference, "lr": 3e-3}, "fp")  # other lr: not a twin
    tuned = {**base, "lr": 2e-3, "dropout": 0.2, "head": "mlp:dropout=0.3"}
    tuned_ref = {**reference, "lr": 4e-4, "weight_decay": 0.05, "head": "mlp:dropout=0.1"}
    assert settings_key(tuned, "fp", tuned=True) == settings_key(tuned_ref, "fp", tuned=True)
    assert settings_key(tuned, "fp", tuned=True) != settings_key(tuned, "fp")


def test_a_curve_without_level_0_has_no_summaries():
    rows = [*_row("film", "film", [0.7, 0.6], levels=(0.5, 1.0)), *_row("ref", "concat_mlp", [0.9, 0.7, 0.5])]
    table = curve_table(pd.DataFrame(rows), settings={"film": "A", "ref": "A"}).set_index("run_id")
    assert np.isnan(table.loc["film", "rel_robust"]) and np.isnan(table.loc["film", "eff_robust"])


def test_a_grid_without_level_0_is_evaluated_with_it():
    protocol = create("protocol", "missing_image:rates=0.5;1")
    assert protocol.levels() == [0.5, 1.0] and protocol.test_levels() == [0.0, 0.5, 1.0]
    assert create("protocol", "missing_image:rates=0;1").test_levels() == [0.0, 1.0]


def test_pareto_front_accuracy_vs_cost():
    frame = pd.DataFrame(
        {"name": list("abcde"), "gflops": [1.0, 2.0, 2.0, 3.0, np.nan], "acc": [0.5, 0.7, 0.6, 0.7, 0.9]}
    )
    front = pareto_front(frame, "gflops", "acc")
    assert frame.loc[front, "name"].tolist() == ["a", "b"]  # c: dominated by b; d: same acc, more cost
