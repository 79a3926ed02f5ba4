"""Training-step FLOPs (efficiency)."""

from __future__ import annotations

from fusionzoo.metrics.base import Metric, ModelContext, register_metric


@register_metric
class GFlopsTrainStep(Metric):
    """gflops_train_step = FLOPs of one forward + backward (CE + aux losses) at the training batch size,
    in GFLOPs, counted by ``torch.utils.flop_counter.FlopCounterMode`` (2 · MAC; the optimiser update
    is elementwise and counts 0). About 3× the forward FLOPs of the batch for dense layers.
    """

    name = "gflops_train_step"
    description = "GFLOPs of one training step (forward + backward) at the training batch size"
    direction = "min"
    kind = "model"

    def compute(self, ctx: ModelContext) -> dict[str, float]:
        from fusionzoo.metrics._flops import train_step_flops  # torch-heavy: imported when measured

        flops = train_step_flops(ctx.model, ctx.batch(max(1, int(ctx.batch_size))))
        ctx.model.eval()
        return {"gflops_train_step": flops / 1e9}
