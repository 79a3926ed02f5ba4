"""Macro-averaged precision, recall and F1."""

from __future__ import annotations

from sklearn.metrics import precision_recall_fscore_support

from fusionzoo.metrics.base import EvalContext, Metric, register_metric


@register_metric
class MacroPRF(Metric):
    """macro_{precision,recall,f1} = (1/|L|) Σ_{c∈L} P_c, R_c, F1_c with F1_c = 2 P_c R_c / (P_c + R_c),
    over L = the classes occurring in the true labels or the predictions (scikit-learn's default label
    set), zero_division = 0."""

    name = "macro_prf"
    description = "macro precision, recall and F1 (unweighted over classes)"
    columns = ("macro_precision", "macro_recall", "macro_f1")

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        precision, recall, f1, _ = precision_recall_fscore_support(
            ctx.labels, ctx.preds, average="macro", zero_division=0
        )
        return {"macro_precision": float(precision), "macro_recall": float(recall), "macro_f1": float(f1)}
