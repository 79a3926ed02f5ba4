"""Helpers the report sections share: configuration labels and colours, metric names, plotly defaults.

Every section names a configuration the same way (:func:`config_labels`: ``fusion`` when each fusion
has one head in the view, else ``fusion @ head``, plus the config hash when the same pair was run with
two training configs) and gives it the same colour in every figure (leaderboard order).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.config import UNIMODAL

__all__ = [
    "PALETTE",
    "apply_layout",
    "colour_of",
    "config_labels",
    "display_spec",
    "fmt_num",
    "is_unimodal",
    "metric_label",
    "per_config",
    "protocol_names",
    "run_config",
]

# plotly's "Plotly" qualitative palette (the colour of a configuration = its leaderboard rank)
PALETTE = (
    "#636EFA",
    "#EF553B",
    "#00CC96",
    "#AB63FA",
    "#FFA15A",
    "#19D3F3",
    "#FF6692",
    "#B6E880",
    "#FF97FF",
    "#FECB52",
)


def is_unimodal(fusion: str) -> bool:
    return str(fusion).split(":")[0] in UNIMODAL


FLOAT = re.compile(r"(?<![\w.])-?\d+\.\d+(?:[eE][-+]?\d+)?(?![\w.])")


def display_spec(spec: Any, digits: int = 4) -> str:
    """A plugin spec for display: floats with more than ``digits`` significant digits shortened
    (``film:dropout=0.44591234567891`` -> ``film:dropout=0.4459``). Display only: the run identity and
    the results keep the exact spec."""

    def short(match: re.Match[str]) -> str:
        text = match.group(0)
        mantissa = re.split("[eE]", text.lstrip("-"))[0]
        if len(mantissa.replace(".", "").lstrip("0")) <= digits:
            return text  # 2.0, 0.264: already short
        return f"{float(text):.{digits}g}"

    return FLOAT.sub(short, str(spec))


def config_labels(frame: pd.DataFrame) -> dict[str, str]:
    """``config_id`` -> a short unique label, for every configuration in ``frame`` (runs or a summary)."""
    configs = frame.drop_duplicates("config_id")
    heads_per_fusion = configs.groupby("fusion")["head"].nunique()
    labels: dict[str, str] = {}
    for _, row in configs.iterrows():
        label = display_spec(row["fusion"])
        if heads_per_fusion.get(row["fusion"], 1) > 1:
            label += f" @ {display_spec(row['head'])}"
        labels[str(row["config_id"])] = label
    counts = pd.Series(list(labels.values())).value_counts()
    hashes = dict(
        zip(configs["config_id"].astype(str), configs.get("config_hash", configs["config_id"]), strict=True)
    )
    for cid, label in labels.items():
        if counts[label] > 1:
            labels[cid] = f"{label} [{str(hashes[cid])[:6]}]"
    datasets = configs["dataset"].nunique() if "dataset" in configs else 1
    if datasets > 1:
        for _, row in configs.iterrows():
            labels[str(row["config_id"])] = f"{row['dataset']}: {labels[str(row['config_id'])]}"
    return labels


def colour_of(order: list[str]) -> dict[str, str]:
    """``config_id`` -> colour, by position in ``order`` (the leaderboard's)."""
    return {cid: PALETTE[i % len(PALETTE)] for i, cid in enumerate(order)}


def metric_label(column: str) -> str:
    """``test_macro_f1`` -> ``macro f1``; ``test_accuracy`` -> ``accuracy``."""
    return column.removeprefix("test_").removeprefix("val_").replace("_", " ")


def fmt_num(value: Any, digits: int = 2, scale: float = 1.0) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "-"
    if math.isnan(value):
        return "-"
    return f"{round(value * scale, digits) + 0.0:.{digits}f}"  # + 0.0: no "-0.000" for a rounded zero


def run_config(row: pd.Series | dict[str, Any]) -> dict[str, Any]:
    """The RunConfig of a results row (the ``config`` JSON column)."""
    try:
        return json.loads(row.get("config") or "{}")
    except (TypeError, ValueError):
        return {}


def per_config(view: Any, metric: str | None = None) -> tuple[pd.DataFrame, dict[str, str], dict[str, str]]:
    """(summary in leaderboard order, config_id -> label, config_id -> colour) of a view."""
    summary = view.summary(metric)
    labels = config_labels(summary) if len(summary) else {}
    return summary, labels, colour_of(list(summary["config_id"].astype(str)))


def apply_layout(fig: Any, title: str = "", height: int = 420, **layout: Any) -> Any:
    """The report's plotly look: white template, a compact margin, legend to the right."""
    fig.update_layout(
        template="plotly_white",
        title={"text": title, "x": 0.0, "xanchor": "left"} if title else None,
        height=height,
        margin={"l": 60, "r": 20, "t": 50 if title else 20, "b": 50},
        font={"family": "Helvetica, Arial, sans-serif", "size": 12},
        **layout,
    )
    return fig


def seed_jitter(n: int, width: float = 0.12, seed: int = 0) -> np.ndarray:
    """Deterministic horizontal offsets for ``n`` per-seed points (so they do not overlap)."""
    if n <= 1:
        return np.zeros(n)
    return np.linspace(-width, width, n) + np.random.default_rng(seed).uniform(-0.01, 0.01, n)


def efficiency_by_config(view: Any) -> pd.DataFrame | None:
    """The ``efficiency.parquet`` row of each configuration of ``view`` (``config_id`` column added): the
    row of its runs' efficiency key (:func:`fusionzoo.evaluation.views.run_efficiency`: fusion, head,
    width, batch size and the feature shapes ``fusionzoo eval`` records in ``inputs/``; a GPU
    measurement first), the same row the terminal leaderboard joins. ``None`` without the table or
    when no configuration has a measurement; configurations without one are left out."""
    from fusionzoo.evaluation.views import run_efficiency

    if view.table("efficiency") is None or not len(view.ok):
        return None
    matched = run_efficiency(view.store, view.ok)
    if "efficiency_key" not in matched.columns:
        return None
    matched = matched[matched["efficiency_key"].notna()]
    if not len(matched):
        return None
    matched = matched.assign(config_id=view.ok.loc[matched.index, "config_id"].astype(str).to_numpy())
    return matched.drop_duplicates("config_id").reset_index(drop=True)


def protocol_names(specs: list[str]) -> dict[str, str]:
    """Canonical protocol spec -> its short label (``missing_image``; the leaderboard's ``rel_robust_*``
    names), the full spec where two specs share a label."""
    from fusionzoo.evaluation.views import protocol_label

    labels = {spec: protocol_label(spec) for spec in dict.fromkeys(specs)}
    counts = pd.Series(list(labels.values()), dtype=object).value_counts()
    return {spec: label if counts[label] == 1 else spec for spec, label in labels.items()}
