"""Area under the ROC curve (binary, or macro one-vs-rest for several classes)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import softmax
from sklearn.metrics import roc_auc_score

from fusionzoo.metrics.base import EvalContext, Metric, register_metric


class AurocWarning(UserWarning):
    """AUROC is undefined on a split (it has one class only); the column is NaN."""


@register_metric
class Auroc(Metric):
    """auroc = P(p⁺_i > p⁺_j) + ½ P(p⁺_i = p⁺_j) over pairs of a positive row i and a negative row j,
    with p = softmax(scores) (scikit-learn ``roc_auc_score``).

    Two classes: p⁺ = p_1, the probability of class 1 (Hateful Memes: ``hateful``). C > 2 classes:
    the unweighted mean over the classes c present in the split's labels of the one-vs-rest AUROC of
    p_c (macro OvR; a class absent from the labels has no positives and is left out). A split whose
    labels hold a single class has no negatives (or no positives): the value is NaN and an
    :class:`AurocWarning` says so.
    """

    name = "auroc"
    description = "area under the ROC curve (binary: class 1; C > 2: macro one-vs-rest)"

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        present = np.unique(ctx.labels)
        if len(present) < 2:
            warnings.warn(
                f"auroc is undefined: the split's labels hold one class only (class {present.tolist()}); "
                "the column is NaN",
                AurocWarning,
                stacklevel=2,
            )
            return {"auroc": float("nan")}
        probabilities = softmax(ctx.scores, axis=1)
        if ctx.num_classes == 2:
            return {"auroc": float(roc_auc_score(ctx.labels, probabilities[:, 1]))}
        per_class = [roc_auc_score(ctx.labels == c, probabilities[:, c]) for c in present]
        return {"auroc": float(np.mean(per_class))}
