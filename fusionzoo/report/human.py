"""Human-labelled test subset vs all test rows: is a fusion's accuracy carried by the noisier labels?

GLAMI-1M labels come from two sources (``label_source``: human annotators or rules); the ``human``
metric writes ``test_acc_human`` = accuracy on the human-labelled test rows. Per configuration: both
accuracies (mean ± 95% t-interval over seeds) side by side, and their paired difference per seed.

A dataset whose human-labelled rows are its whole test split (the embedded dataset: every row has
the same ``label_source``) has ``test_acc_human == test_accuracy`` in every run: nothing to compare,
so it is left out with that reason instead of a table of zeros.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fusionzoo.report.base import Figure, Reporter, ResultsView, Section, Table, Text, register_reporter
from fusionzoo.report.common import apply_layout, fmt_num, per_config

__all__ = ["HumanSubset"]


def _pm(values: list[float]) -> tuple[float, float, str]:
    from fusionzoo.results.stats import t_interval

    mean, ci = t_interval(values)
    return mean, ci, fmt_num(mean, 2, 100) + ("" if np.isnan(ci) else f" ± {fmt_num(ci, 2, 100)}")


@register_reporter
class HumanSubset(Reporter):
    """Accuracy on human-labelled test rows vs all test rows (module docstring)."""

    name = "human"
    title = "Human-labelled subset vs all"
    description = "test accuracy on the human-labelled rows (test_acc_human) next to all test rows"
    formats = ("section",)
    order = 55

    def render(self, view: ResultsView, fmt: str = "section", **_: Any) -> Section:
        import plotly.graph_objects as go

        if "test_acc_human" not in view.runs.columns or not view.ok["test_acc_human"].notna().any():
            return Section.absent(
                self, "no test_acc_human in the results (the dataset has no label_source column)"
            )
        summary, labels, _ = per_config(view)
        blocks: list[Any] = []
        whole = whole_split_datasets(view.ok)
        for dataset, part in summary.groupby("dataset", sort=False):
            if dataset in whole:
                continue
            rows, bars = [], {"all test rows": ([], []), "human-labelled": ([], [])}
            names = []
            for cid in part["config_id"].astype(str):
                runs = view.ok[(view.ok["config_id"].astype(str) == cid) & view.ok["test_acc_human"].notna()]
                if not len(runs):
                    continue
                every = runs["test_accuracy"].astype(float).tolist()
                human = runs["test_acc_human"].astype(float).tolist()
                all_mean, all_ci, all_text = _pm(every)
                human_mean, human_ci, human_text = _pm(human)
                _, _, gap_text = _pm([h - a for h, a in zip(human, every, strict=True)])
                names.append(labels[cid])
                for key, mean, ci in (
                    ("all test rows", all_mean, all_ci),
                    ("human-labelled", human_mean, human_ci),
                ):
                    bars[key][0].append(mean * 100)
                    bars[key][1].append(0.0 if np.isnan(ci) else ci * 100)
                rows.append(
                    {
                        "configuration": labels[cid],
                        "seeds": str(len(runs)),
                        "all test rows (%)": all_text,
                        "human-labelled (%)": human_text,
                        "human − all (pts)": gap_text,
                    }
                )
            if not rows:
                continue
            fig = go.Figure()
            for (key, (means, cis)), colour in zip(bars.items(), ("#9aa5b1", "#3b5bdb"), strict=True):
                fig.add_bar(
                    x=names,
                    y=means,
                    error_y={"type": "data", "array": cis},
                    name=key,
                    marker={"color": colour},
                )
            fig.update_layout(barmode="group")
            fig.update_yaxes(title_text="test accuracy (%)")
            apply_layout(fig, f"{dataset}: human-labelled test rows vs all", height=400)
            blocks.append(Figure(fig, caption=f"{dataset}: mean ± 95% CI over seeds"))
            blocks.append(
                Table(
                    pd.DataFrame(rows), caption=f"{dataset}: the difference is paired per seed (same model)"
                )
            )
        why = (
            "every test row is human-labelled (test_acc_human equals test_accuracy in every run), so "
            "there is no subset to compare"
        )
        if not blocks:
            if whole:
                return Section.absent(self, f"{', '.join(sorted(whole))}: {why}")
            return Section.absent(self, "no finished run has test_acc_human")
        if whole:
            blocks.append(Text(f"Not shown for {', '.join(sorted(whole))}: {why}."))
        return Section.of(self, *blocks)


def whole_split_datasets(ok: pd.DataFrame) -> set[str]:
    """Datasets whose runs all have ``test_acc_human == test_accuracy`` (the human-labelled rows are
    the whole test split, as on the embedded dataset)."""
    out = set()
    for dataset, part in ok[ok["test_acc_human"].notna()].groupby("dataset", sort=False):
        gap = (part["test_acc_human"].astype(float) - part["test_accuracy"].astype(float)).abs()
        if len(gap) and bool((gap < 1e-12).all()):
            out.add(str(dataset))
    return out
