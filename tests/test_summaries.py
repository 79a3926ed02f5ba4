"""Robustness summaries and Pareto fronts on hand-made curves (MultiBench's definitions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusionzoo.evaluation.summaries import (
    curve_table,
    effective_robustness,
    maxmin_normalise,
    pareto_front,
    relative_robustness,
)
from fusionzoo.metrics.base import CurveContext, column_direction
from fusionzoo.registry import create

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


def test_effective_robustness_is_the_gap_to_the_shifted_reference():
    reference = [0.9, 0.7, 0.5]
    assert effective_robustness([0, 0.5, 1], [0.6, 0.4, 0.2], reference) == pytest.approx(0.0)  # same drop
    # degrades by 0.1 per level instead of 0.2: +0.1 at level 0.5, +0.2 at level 1
    assert effective_robustness([0, 0.5, 1], [0.6, 0.5, 0.4], reference) == pytest.approx(0.3)
    assert effective_robustness([0, 0.5, 1], [0.9, 0.5, 0.1], reference) == pytest.approx(-0.6)


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
        "eff_robust_missing_image": pytest.approx(0.3)
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
    table = curve_table(pd.DataFrame(rows)).set_index("run_id")
    assert table.loc["film0", "eff_robust"] == pytest.approx(0.1 + 0.2)
    assert table.loc["concat_mlp0", "eff_robust"] == pytest.approx(0.0)
    assert table.loc["film0", "rel_robust"] == pytest.approx(0.7)
    assert np.isnan(curve_table(pd.DataFrame(rows), reference="fluid")["eff_robust"]).all()


def test_pareto_front_accuracy_vs_cost():
    frame = pd.DataFrame(
        {"name": list("abcde"), "gflops": [1.0, 2.0, 2.0, 3.0, np.nan], "acc": [0.5, 0.7, 0.6, 0.7, 0.9]}
    )
    front = pareto_front(frame, "gflops", "acc")
    assert frame.loc[front, "name"].tolist() == ["a", "b"]  # c: dominated by b; d: same acc, more cost
