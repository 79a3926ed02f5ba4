"""Modality contributions: each modality's Shapley value per fusion, and which fusions use both.

From the robustness rows (``fusionzoo eval`` or ``bench --eval robustness`` with ``missing_image``
and ``missing_text`` at level 1): :func:`fusionzoo.evaluation.shapley.modality_shapley` (exact
2-player Shapley values, v(∅) = the dataset's majority-class rate from ``classes.parquet``) and
:func:`~fusionzoo.evaluation.shapley.shapley_summary` (mean over seeds). A fusion "uses both" when
each modality's φ is at least a quarter of the total (image share in [0.25, 0.75]).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from fusionzoo.report.base import Reporter, ResultsView, Section, Table, Text, register_reporter

__all__ = ["BOTH_SHARE", "ModalityContributions"]

BOTH_SHARE = (0.25, 0.75)


@register_reporter
class ModalityContributions(Reporter):
    """Shapley values of image and text per configuration (module docstring)."""

    name = "contributions"
    title = "Modality contributions"
    description = "each modality's Shapley value per fusion (missing_image/missing_text at level 1)"
    formats = ("section",)
    order = 62

    def render(self, view: ResultsView, fmt: str = "section", **_: Any) -> Section:
        from fusionzoo.evaluation.shapley import ShapleyError, modality_shapley, shapley_summary
        from fusionzoo.results.cross_dataset import chance_accuracy

        rows, classes = view.table("robustness"), view.table("classes")
        why = (
            "run fusionzoo eval RUNS_DIR --protocols missing_image,missing_text (level 1 removes a modality)"
        )
        if rows is None or not len(rows) or classes is None or not len(classes):
            return Section.absent(self, f"no robustness rows: {why}")
        if "protocol_name" not in rows.columns or not {"missing_image", "missing_text"} <= set(
            rows["protocol_name"]
        ):
            return Section.absent(self, f"missing_image and missing_text were not both evaluated: {why}")
        levels = chance_accuracy(classes).set_index("data_fingerprint")["majority"]
        pairs = view.runs[["dataset", "data_fingerprint"]].drop_duplicates()
        chance = {d: float(levels[f]) for d, f in pairs.itertuples(index=False) if f in levels.index}
        metric = view.metric if view.metric in rows.columns else "test_accuracy"
        try:
            per_run = modality_shapley(rows, chance=chance, metric=metric)
        except ShapleyError as exc:
            return Section.absent(self, str(exc))
        summary = shapley_summary(per_run)
        if not len(summary):
            return Section.absent(self, f"no run has both removals evaluated: {why}")
        low, high = BOTH_SHARE
        table = pd.DataFrame({
            "dataset": summary["dataset"], "fusion": summary["fusion"], "head": summary["head"],
            "runs": summary["runs"], "φ image": summary["phi_image"].map("{:.3f}".format),
            "φ text": summary["phi_text"].map("{:.3f}".format),
            "image share": summary["image_share"].map("{:.2f}".format),
            "imbalance": summary["imbalance"].map("{:.2f}".format),
            "uses both": summary["image_share"].between(low, high).map({True: "yes", False: "no"}),
        })  # fmt: skip
        return Section.of(
            self,
            Table(table, caption=f"{metric}: φ_image + φ_text = v(both) − v(∅) (v(∅) = majority-class rate); "
                  f"mean over seeds; 'uses both': image share in [{low}, {high}]"),
            Text("φ_img = ½[(v(img) − v(∅)) + (v(img, txt) − v(txt))]; v(img) is the score with every text "
                 "removed (missing_text at level 1), v(txt) with every image removed."),
        )  # fmt: skip
