"""Inference latency at batch 1 (efficiency)."""

from __future__ import annotations

import time

import numpy as np

from fusionzoo.metrics._timing import MIN_RUN_TIME, forward_timer, warm_up
from fusionzoo.metrics.base import Metric, ModelContext, register_metric

MIN_CALLS = 30


@register_metric
class Latency(Metric):
    """latency_p50_ms / latency_p95_ms: median and 95th percentile of the wall time of single eval-mode
    forwards (no grad) at batch 1, in ms, timed with ``torch.utils.benchmark.Timer`` (``num_threads``
    = the measurement's thread count, recorded in ``threads``) after 5 warm-up calls, over at least
    30 calls and 0.5 s. Each call is timed alone (``Timer.timeit(1)``), so p95 sees the tail.
    """

    name = "latency"
    description = "forward latency at batch 1: p50 and p95 in ms (torch.utils.benchmark)"
    direction = "min"
    kind = "model"
    columns = ("latency_p50_ms", "latency_p95_ms")

    def compute(self, ctx: ModelContext) -> dict[str, float]:
        timer = forward_timer(ctx, 1)
        warm_up(timer)
        times = []
        deadline = time.perf_counter() + MIN_RUN_TIME
        while len(times) < MIN_CALLS or time.perf_counter() < deadline:
            times.append(timer.timeit(1).median)
        ms = np.asarray(times) * 1e3
        return {
            "latency_p50_ms": float(np.percentile(ms, 50)),
            "latency_p95_ms": float(np.percentile(ms, 95)),
        }
