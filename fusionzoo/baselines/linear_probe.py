"""The linear-probe floor: logistic regression on pooled frozen features, no fusion training.

For features ``x`` = the mean-pooled image tokens, the mean-pooled text tokens, or both concatenated
(``features = image | text | both``), standardised on the training split:

    p(y | x) = softmax(W x + b),   min_W,b  − Σ_i log p(y_i | x_i) + ||W||² / (2C)

(scikit-learn ``LogisticRegression``, L-BFGS, multinomial). ``C`` is chosen on the **validation**
split from :data:`C_GRID` by the run's selection metric (ties: the smaller C), the model is fitted on
the training split only (as every fusion is), and the test split is scored once with every registered
metric. Deterministic: the same data give the same numbers, so one run (seed 0) represents it.

The scores are the class **probabilities** (``predict_proba``; on two-class data ``decision_function``
is one column, which argmax cannot read). The fitted probe is a model
(:class:`~fusionzoo.baselines.probe_model.ProbeModel`): it is saved in the run's checkpoint folder
(safetensors, no pickle) and the test split is scored through it batch by batch, exactly as
``fusionzoo eval`` scores it under each robustness protocol, so level 0 of its curves reproduces the
test metrics recorded here.

A trained fusion that cannot beat this floor on the same features adds nothing a linear model on the
pooled tokens would not give; the leaderboard says so.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from fusionzoo.baselines.probe_model import ProbeModel, save_probe
from fusionzoo.metrics.base import column_direction, evaluate_predictions
from fusionzoo.metrics.class_buckets import class_buckets
from fusionzoo.registry import parse_spec

__all__ = ["C_GRID", "FEATURES", "PROBE_HEAD", "PROBE_NAME", "pooled_views", "probe_run"]

PROBE_NAME = "linear_probe"
PROBE_HEAD = "logreg"
FEATURES = ("image", "text", "both")
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
MAX_ITER = 500


def pooled_views(data: Any, split: str) -> dict[str, np.ndarray]:
    """``{"image", "text", "both"}`` mean-pooled float32 features of one split of frozen-mode data."""
    from fusionzoo.encoders.probe import pooled

    image, text = pooled(data.split(split))
    return {"image": image, "text": text, "both": np.hstack([image, text])}


def probe_run(config: Any, data: Any, checkpoint_dir: str | Path | None = None) -> Any:
    """Fit the probe named by ``config.fusion`` (``linear_probe:features=both``) on ``data``; a RunResult.

    With ``checkpoint_dir``, the fitted probe is saved there (:func:`~fusionzoo.baselines.probe_model.
    save_probe`) for ``fusionzoo eval``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    from fusionzoo.train.evaluation import predict
    from fusionzoo.train.trainer import RunResult

    started = time.perf_counter()
    _, options = parse_spec(config.fusion)
    features = str(options.get("features", "both"))
    if features not in FEATURES:
        raise ValueError(f"linear_probe features must be one of {', '.join(FEATURES)}, got {features!r}")
    if not hasattr(data, "split"):
        raise ValueError("the linear probe needs frozen (cached) features; it is not run in finetune mode")
    x = {s: pooled_views(data, s)[features] for s in ("train", "val")}
    y = {s: data.labels(s) for s in ("train", "val", "test")}
    buckets = class_buckets(y["train"], data.num_classes)
    scaler = StandardScaler().fit(x["train"])
    x = {s: scaler.transform(v) for s, v in x.items()}
    sign = 1.0 if column_direction(config.metric) == "max" else -1.0

    def scores(model: Any, split: str) -> np.ndarray:
        full = np.zeros((len(x[split]), data.num_classes), dtype=np.float64)
        full[:, model.classes_] = model.predict_proba(x[split])
        return full

    best = None
    history = []
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c in C_GRID:
            model = LogisticRegression(C=c, max_iter=MAX_ITER).fit(x["train"], y["train"])
            val = evaluate_predictions(
                y["val"], scores(model, "val"), num_classes=data.num_classes, buckets=buckets,
                meta=data.meta("val"),
            )  # fmt: skip
            history.append(
                {"epoch": float(len(history) + 1), "C": c, **{f"val_{k}": v for k, v in val.items()}}
            )
            score = sign * val.get(config.metric, float("nan"))
            if best is None or score > best[0]:
                best = (score, c, model, val)
    _, c, model, val_metrics = best
    probe = ProbeModel.from_sklearn(features, data.num_classes, scaler, model)
    # the test split through the probe model, batch by batch: what fusionzoo eval computes at level 0
    test_scores = predict(probe, data, "test", batch_size=config.eval_batch_size)
    metrics = evaluate_predictions(
        y["test"], test_scores, num_classes=data.num_classes, buckets=buckets, meta=data.meta("test")
    )
    result = RunResult(
        status="ok",
        config=config.to_dict(),
        fusion=config.fusion,
        head=PROBE_HEAD,
        metrics=metrics,
        val_metrics=val_metrics,
        history=history,
        best_epoch=C_GRID.index(c) + 1,
        epochs_run=len(C_GRID),
        params=int(model.coef_.size + model.intercept_.size),
        error="",
    )
    if checkpoint_dir is not None:
        info = {"C": c, "best_epoch": result.best_epoch, "val_metrics": val_metrics}
        result.checkpoint = str(save_probe(checkpoint_dir, probe, config, info))
    result.test_predictions = test_scores.argmax(axis=1)
    result.test_labels = y["test"]
    result.train_time = time.perf_counter() - started
    return result
