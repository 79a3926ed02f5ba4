"""The ``--dry-run`` cost estimate of a run, and where each number comes from.

Per run, the first source that applies:

``earlier runs``
    the mean ``train_time`` of finished runs of the same configuration (same ``config_hash``) in the
    runs directory: the best evidence, measured on this machine with this code;
``earlier runs, other settings``
    the same dataset, fusion and head with other training settings (epochs, width, ...): a rough guide;
``timed steps``
    a short measurement: the run's model is built at the data's shapes (from the feature cache) and a
    few AdamW training steps on a synthetic batch of its batch size, and one evaluation forward, are
    timed on ``--threads`` threads; the run's time is steps per epoch × epochs × the median step plus
    the validation passes of every epoch and the final test pass. This counts what the trainer does
    per batch (forward, backward with the aux losses, optimizer step), so it is right for small models
    that run far below the machine's matmul peak, where a FLOP count divided by a guessed utilisation
    was not (it gave FLUID 13 s where the runs took 35–51 s). It leaves out data batching and early
    stopping (an upper bound when a run stops early). One measurement per distinct configuration:
    seeds share it.

Without an earlier run and without the cached features (no shapes yet) there is no estimate.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["Estimate", "Estimator", "time_steps"]

STEPS = 3  # timed training steps after one warm-up step (median)


@dataclass(frozen=True)
class Estimate:
    """Seconds one run is expected to train (NaN: unknown) and the source of that number."""

    seconds: float
    source: str


def time_steps(config: Any, shapes: dict[str, int], threads: int = 1) -> tuple[float, float]:
    """(seconds per training step at ``config.batch_size``, seconds per evaluated row) of ``config``'s
    model at the data ``shapes``, timed on ``threads`` threads (module docstring)."""
    import torch

    from fusionzoo.metrics._flops import synthetic_batch, training_loss
    from fusionzoo.train.model import FusionModel

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        model = FusionModel.from_config(
            config,
            image_dim=shapes["image_dim"],
            text_dim=shapes["text_dim"],
            num_classes=shapes["num_classes"],
            num_image_tokens=shapes["image_tokens"],
        )
        batch_size = max(1, min(config.batch_size, shapes["n_train"]))
        dims = (shapes["image_tokens"], shapes["image_dim"], shapes["text_tokens"], shapes["text_dim"])
        batch = synthetic_batch(batch_size, *dims, shapes["num_classes"])
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
        model.train()
        timings = []
        for step in range(STEPS + 1):
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            training_loss(model, batch).backward()
            optimizer.step()
            if step:  # the first step allocates optimizer state: a warm-up
                timings.append(time.perf_counter() - start)
        rows = max(1, min(getattr(config, "eval_batch_size", batch_size), shapes.get("n_val") or batch_size))
        evaluation = synthetic_batch(rows, *dims, shapes["num_classes"])
        model.eval()
        with torch.no_grad():
            start = time.perf_counter()
            model(evaluation["image"], evaluation["text"], evaluation["image_mask"], evaluation["text_mask"])
            per_row = (time.perf_counter() - start) / rows
    finally:
        torch.set_num_threads(before)
    return statistics.median(timings), per_row


class Estimator:
    """Estimates for the runs of one grid; timed measurements are cached per configuration."""

    def __init__(self, store: Any, threads: int = 1) -> None:
        self.frame = store.load() if store is not None else None
        self.threads = threads
        self.timed: dict[tuple[str, str, str, str], tuple[float, float]] = {}

    def __call__(self, spec: Any, shapes: dict[str, int] | None) -> Estimate:
        earlier = self._earlier(spec)
        if earlier is not None:
            return earlier
        if not shapes:
            return Estimate(float("nan"), "")
        key = (spec.dataset, spec.fusion, spec.head, spec.config_hash)
        if key not in self.timed:
            self.timed[key] = time_steps(spec.config, shapes, self.threads)
        step, per_row = self.timed[key]
        config = spec.config
        batch_size = max(1, min(config.batch_size, shapes["n_train"]))
        steps = math.ceil(shapes["n_train"] / batch_size) * config.epochs
        rows = shapes.get("n_val", 0) * config.epochs + shapes.get("n_test", 0)
        return Estimate(steps * step + rows * per_row, "timed steps")

    def _earlier(self, spec: Any) -> Estimate | None:
        from fusionzoo.results.store import FINISHED

        frame = self.frame
        if frame is None or not len(frame):
            return None
        same = frame[
            (frame["dataset"] == spec.identity["dataset"])
            & (frame["fusion"] == spec.fusion)
            & (frame["head"] == spec.head)
            & frame["status"].isin(FINISHED)
        ]
        exact = same[same["config_hash"] == spec.config_hash]
        for pick, source in ((exact, "earlier runs"), (same, "earlier runs, other settings")):
            times = pick["train_time"].astype(float)
            times = times[times.notna()]
            if len(times):
                return Estimate(float(times.mean()), f"{source} ({len(times)})")
        return None
