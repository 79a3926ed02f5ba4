"""Inference throughput at the training batch size (efficiency)."""

from __future__ import annotations

from fusionzoo.metrics._timing import MIN_RUN_TIME, forward_timer, warm_up
from fusionzoo.metrics.base import Metric, ModelContext, register_metric


@register_metric
class Throughput(Metric):
    """throughput = B / t̃ samples per second, t̃ the median time of one eval-mode forward (no grad) at
    the training batch size B, from ``torch.utils.benchmark.Timer.blocked_autorange`` (5 warm-up calls,
    then blocks of calls for at least 0.5 s; ``num_threads`` = the recorded thread count).
    """

    name = "throughput"
    description = "forward samples/s at the training batch size (torch.utils.benchmark median)"
    direction = "max"
    kind = "model"

    def compute(self, ctx: ModelContext) -> dict[str, float]:
        size = max(1, int(ctx.batch_size))
        timer = forward_timer(ctx, size)
        warm_up(timer)
        measurement = timer.blocked_autorange(min_run_time=MIN_RUN_TIME)
        return {"throughput": size / measurement.median}
