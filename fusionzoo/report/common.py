"""Helpers the report sections share: configuration labels and colours, metric names, plotly defaults.

Every section names a configuration the same way (:func:`config_labels`: ``fusion`` when each fusion
has one head in the view, else ``fusion @ head``, plus the config hash when the same pair was run with
two training configs) and gives it the same colour in every figure (leaderboard order).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.config import UNIMODAL

__all__ = [
    "PALETTE",
    "apply_layout",
    "colour_of",
    "config_labels",
    "fmt_num",
    "is_unimodal",
    "metric_label",
    "per_config",
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


def config_labels(frame: pd.DataFrame) -> dict[str, str]:
    """``config_id`` -> a short unique label, for every configuration in ``frame`` (runs or a summary)."""
    configs = frame.drop_duplicates("config_id")
    heads_per_fusion = configs.groupby("fusion")["head"].nunique()
    labels: dict[str, str] = {}
    for _, row in configs.iterrows():
        label = str(row["fusion"])
        if heads_per_fusion.get(row["fusion"], 1) > 1:
            label += f" @ {row['head']}"
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
    return "-" if math.isnan(value) else f"{value * scale:.{digits}f}"


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
    """The ``efficiency.parquet`` row of each configuration of ``view`` (``config_id`` column added): same
    fusion, head, width ``dim`` and batch size as the runs' RunConfig; the newest measurement when
    several devices or dates match. ``None`` without the table; configurations without a match are
    left out."""
    efficiency = view.table("efficiency")
    if efficiency is None or not len(efficiency) or not len(view.runs):
        return None
    rows = []
    for config_id, group in view.runs.groupby("config_id", sort=False):
        first = group.iloc[0]
        config = run_config(first)
        match = efficiency[(efficiency["fusion"] == first["fusion"]) & (efficiency["head"] == first["head"])]
        for column in ("dim", "batch_size"):
            if column in match.columns and column in config:
                match = match[match[column].astype(float) == float(config[column])]
        if len(match):
            if "measured_at" in match.columns:
                match = match.sort_values("measured_at")
            rows.append({**match.iloc[-1].to_dict(), "config_id": str(config_id)})
    return pd.DataFrame(rows) if rows else None
