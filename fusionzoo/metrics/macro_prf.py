"""Macro-averaged precision, recall and F1."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

from fusionzoo.metrics.base import EvalContext, Metric, register_metric


@register_metric
class MacroPRF(Metric):
    """macro_{precision,recall,f1} = (1/C) Σ_{c=0}^{C-1} P_c, R_c, F1_c with F1_c = 2 P_c R_c / (P_c + R_c),
    over **all C classes of the data** (``labels=range(C)``), zero_division = 0: a class never predicted
    scores P_c = F1_c = 0, and so does a class without rows in the split. The label set is the data's,
    never the predictions', so every run on one split averages over the same classes (scikit-learn's
    default, the classes in the labels *or the predictions*, let a run's mistakes change the
    denominator)."""

    name = "macro_prf"
    description = "macro precision, recall and F1 (unweighted over all classes)"
    columns = ("macro_precision", "macro_recall", "macro_f1")

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        precision, recall, f1, _ = precision_recall_fscore_support(
            ctx.labels, ctx.preds, labels=np.arange(ctx.num_classes), average="macro", zero_division=0
        )
        return {"macro_precision": float(precision), "macro_recall": float(recall), "macro_f1": float(f1)}
