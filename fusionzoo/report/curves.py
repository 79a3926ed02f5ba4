"""Training curves: training loss and the validation metric per epoch, mean over seeds.

From ``history.parquet`` (one row per run and epoch): ``train_loss`` (the total loss: CE plus every
weighted aux loss) and ``val_<metric>`` where ``<metric>`` is the metric the run selected its best
epoch on (the RunConfig's ``metric``, e.g. accuracy). For each configuration and epoch the mean over
the seeds that reached that epoch (runs stopped early drop out; the hover says how many remain).
"""

from __future__ import annotations

from typing import Any

from fusionzoo.report.base import Figure, Reporter, ResultsView, Section, register_reporter
from fusionzoo.report.common import apply_layout, metric_label, per_config, run_config

__all__ = ["TrainingCurves"]


@register_reporter
class TrainingCurves(Reporter):
    """Loss and validation metric per epoch, mean over seeds (module docstring)."""

    name = "curves"
    title = "Training curves"
    description = "training loss and validation metric per epoch (mean over seeds) from history.parquet"
    formats = ("section",)
    order = 70

    def render(self, view: ResultsView, fmt: str = "section", **_: Any) -> Section:
        from plotly.subplots import make_subplots

        history = view.history
        if not len(history) or "train_loss" not in history.columns:
            return Section.absent(self, "no history.parquet rows for these runs")
        summary, labels, colours = per_config(view)
        config_of = dict(
            zip(view.runs["run_id"].astype(str), view.runs["config_id"].astype(str), strict=True)
        )
        history = history.assign(config_id=history["run_id"].astype(str).map(config_of))
        metric_of = {
            str(row["config_id"]): f"val_{run_config(row).get('metric', 'accuracy')}"
            for _, row in view.runs.iterrows()
        }
        blocks = []
        for dataset, part in summary.groupby("dataset", sort=False):
            metrics = sorted({metric_of[c] for c in part["config_id"].astype(str)})
            metric = metrics[0] if len(metrics) == 1 else "val_accuracy"
            fig = make_subplots(
                rows=1, cols=2, subplot_titles=["training loss", f"validation {metric_label(metric)}"]
            )
            for cid in part["config_id"].astype(str):
                rows = history[history["config_id"] == cid]
                if not len(rows):
                    continue
                grouped = rows.groupby("epoch")
                counts = grouped.size()
                for col, column, scale in ((1, "train_loss", 1.0), (2, metric, 100.0)):
                    if column not in rows.columns:
                        continue
                    mean = grouped[column].mean() * scale
                    fig.add_scatter(
                        x=[int(e) for e in mean.index],
                        y=list(mean),
                        mode="lines+markers",
                        marker={"size": 4},
                        line={"color": colours.get(cid)},
                        name=labels.get(cid, cid),
                        legendgroup=cid,
                        showlegend=col == 1,
                        text=[f"{n} seed(s)" for n in counts],
                        hovertemplate="epoch %{x}: %{y:.3f} (%{text})<extra></extra>",
                        row=1,
                        col=col,
                    )
            fig.update_xaxes(title_text="epoch")
            fig.update_yaxes(title_text="loss", row=1, col=1)
            fig.update_yaxes(title_text=f"{metric_label(metric)} (%)", row=1, col=2)
            apply_layout(fig, f"{dataset}: mean over seeds per epoch", height=400)
            blocks.append(
                Figure(
                    fig,
                    caption=f"{dataset}: training loss (CE + weighted aux losses) and validation "
                    f"{metric_label(metric)} per epoch; the best validation epoch's weights are the ones tested",
                )
            )
        return Section.of(self, *blocks)
