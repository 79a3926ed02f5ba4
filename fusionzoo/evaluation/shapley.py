"""Modality contributions: each modality's exact 2-player Shapley value per run, from the robustness
rows (``robustness.parquet``) in which a modality was removed, and an imbalance score.

Players image and text; v(S) = the test score (default ``test_accuracy``, higher better) with only
the modalities of S present:

    v({img, txt}) = the clean score: the run's level-0 row (any protocol: level 0 is the clean test),
                    else ``clean[run_id]`` (e.g. the results table's ``test_accuracy``)
    v({img})      = ``missing_text`` at level 1 (every test sample loses its text)
    v({txt})      = ``missing_image`` at level 1 (every test sample loses its image)
    v(∅)          = the chance level of the dataset (``chance``; for accuracy the majority-class rate
                    of the test split, the best prediction without inputs:
                    :func:`fusionzoo.results.cross_dataset.chance_accuracy`), or, with ``both=NAME``,
                    the level-1 score of a protocol that removes both modalities. No built-in
                    protocol does: ``missing_both_random`` at level 1 removes exactly one per sample
                    (half the image, half the text), so it is not v(∅).

    φ_img = ½ [(v(img) − v(∅)) + (v(img, txt) − v(txt))]
    φ_txt = ½ [(v(txt) − v(∅)) + (v(img, txt) − v(img))]      φ_img + φ_txt = v(img, txt) − v(∅)

``imbalance`` = |φ_img − φ_txt| / (|φ_img| + |φ_txt|) ∈ [0, 1]: 0 = both modalities contribute
equally, 1 = one carries everything (or the other hurts); NaN when both are 0. ``image_share`` =
φ_img / (φ_img + φ_txt) (NaN when the sum is not positive). The values depend on the protocols'
imputation (``mask`` by default: the fusion sees the modality as absent); a run evaluated under two
specs of one protocol must name the one to use (``image=``/``text=`` canonical spec).

With v(∅) = chance, a modality a model ignores still gets ½ (v(other modality alone) − chance): for
``image_only``, φ_txt = ½ (v({txt}) − chance), the gap between its blank-image prediction and the
best constant one (small, not exactly 0); the model's own score with both removed would make it 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from fusionzoo.errors import FusionzooError
from fusionzoo.metrics.base import column_direction

__all__ = ["ShapleyError", "modality_shapley", "shapley_summary"]

IDENTITY = ("run_id", "config_id", "dataset", "fusion", "head", "seed", "train_protocol")
GROUP = ("dataset", "fusion", "head", "config_id", "train_protocol")


class ShapleyError(FusionzooError, ValueError):
    """Rows that cannot give modality contributions; the message names what is missing."""


def modality_shapley(
    rows: pd.DataFrame,
    *,
    chance: float | Mapping[str, float] | None = None,
    metric: str = "test_accuracy",
    image: str = "missing_image",
    text: str = "missing_text",
    clean: Mapping[str, float] | None = None,
    both: str | None = None,
) -> pd.DataFrame:
    """One row per run of ``rows`` (robustness rows) that has a ``missing_image`` or ``missing_text``
    evaluation: the identity columns, ``v_both``, ``v_image`` (text removed), ``v_text`` (image
    removed), ``v_empty``, ``phi_image``, ``phi_text``, ``imbalance``, ``image_share`` and ``missing``
    (the evaluations a run lacks, its φ NaN). ``chance``: v(∅), one value or per dataset (default: a
    ``chance`` column of ``rows``); ``image``/``text``/``both``: protocol names or canonical specs
    (``both``: a protocol removing both modalities, whose level-1 score replaces the chance level)."""
    needed = [
        c for c in (*IDENTITY[:6], "protocol", "protocol_name", "level", metric) if c not in rows.columns
    ]
    if needed:
        raise ShapleyError(f"the robustness rows lack {', '.join(needed)}")
    if column_direction(metric) != "max":
        raise ShapleyError(f"{metric} is lower-is-better: its Shapley values are not contributions")
    table = rows.assign(level=rows["level"].astype(float), train_protocol=_train_protocols(rows))
    image_rows, text_rows = _full_removal(table, image), _full_removal(table, text)
    both_rows = _full_removal(table, both) if both is not None else None
    runs = pd.concat([image_rows, text_rows])["run_id"].unique()
    clean_rows = table[np.isclose(table["level"], 0.0)].groupby("run_id")[metric].first()
    out = []
    for run_id in runs:
        run = table[table["run_id"] == run_id].iloc[0]
        values = {
            "v_both": clean_rows.get(run_id, (clean or {}).get(run_id, np.nan)),
            "v_image": _value(text_rows, run_id, metric, text),
            "v_text": _value(image_rows, run_id, metric, image),
            "v_empty": _chance(chance, run) if both_rows is None else _value(both_rows, run_id, metric, both),
        }
        missing = [k for k, v in values.items() if not np.isfinite(v)]
        out.append(
            {**{c: run[c] for c in IDENTITY}, **values, **_shapley(**values), "missing": ", ".join(missing)}
        )
    columns = [*IDENTITY, "v_both", "v_image", "v_text", "v_empty", "phi_image", "phi_text", "imbalance",
               "image_share", "missing"]  # fmt: skip
    return pd.DataFrame(out, columns=columns)


def _train_protocols(rows: pd.DataFrame) -> pd.Series:
    if "train_protocol" not in rows.columns:
        return pd.Series("", index=rows.index)
    return rows["train_protocol"].fillna("").astype(str)


def _full_removal(table: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """The level-1 rows of ``protocol`` (a name, or a canonical spec when it holds ':')."""
    match = table["protocol"] == protocol if ":" in protocol else table["protocol_name"] == protocol
    return table[match & np.isclose(table["level"], 1.0)]


def _value(removal: pd.DataFrame, run_id: str, metric: str, protocol: str) -> float:
    rows = removal[removal["run_id"] == run_id]
    if rows["protocol"].nunique() > 1:
        specs = ", ".join(sorted(rows["protocol"].unique()))
        raise ShapleyError(
            f"run {run_id} was evaluated under several {protocol} specs ({specs}); name one as the "
            "image= / text= canonical spec"
        )
    return float(rows[metric].iloc[0]) if len(rows) else float("nan")


def _chance(chance: float | Mapping[str, float] | None, run: pd.Series) -> float:
    if chance is None:
        if "chance" not in run.index:
            raise ShapleyError(
                "v(∅) needs the chance level: chance=<value> or {dataset: value} (for accuracy: the "
                "majority-class rate, fusionzoo.results.cross_dataset.chance_accuracy) or a 'chance' column"
            )
        return float(run["chance"])
    if isinstance(chance, Mapping):
        if run["dataset"] not in chance:
            raise ShapleyError(f"no chance level for dataset {run['dataset']!r}")
        return float(chance[run["dataset"]])
    return float(chance)


def _shapley(v_both: float, v_image: float, v_text: float, v_empty: float) -> dict[str, float]:
    phi_image = 0.5 * ((v_image - v_empty) + (v_both - v_text))
    phi_text = 0.5 * ((v_text - v_empty) + (v_both - v_image))
    size = abs(phi_image) + abs(phi_text)
    total = phi_image + phi_text
    return {
        "phi_image": phi_image,
        "phi_text": phi_text,
        "imbalance": abs(phi_image - phi_text) / size if size > 0 else float("nan"),
        "image_share": phi_image / total if total > 0 else float("nan"),
    }


def shapley_summary(per_run: pd.DataFrame) -> pd.DataFrame:
    """Per configuration (:data:`GROUP`): ``runs`` with all values, ``incomplete`` (runs missing an
    evaluation), the mean and std over seeds of ``phi_image``/``phi_text``, the mean ``imbalance`` and
    ``image_share``, and ``v_both`` (mean clean score)."""
    out = []
    for key, group in per_run.groupby(list(GROUP), sort=True, dropna=False):
        ok = group[group["missing"] == ""]
        row = {**dict(zip(GROUP, key, strict=True)), "runs": len(ok), "incomplete": len(group) - len(ok)}
        for column in ("phi_image", "phi_text"):
            row[column] = float(ok[column].mean()) if len(ok) else float("nan")
            row[f"{column}_std"] = float(ok[column].std(ddof=1)) if len(ok) > 1 else float("nan")
        for column in ("imbalance", "image_share", "v_both"):
            row[column] = float(ok[column].mean()) if len(ok) else float("nan")
        out.append(row)
    return pd.DataFrame(out)
