"""Forward FLOPs per sample (efficiency)."""

from __future__ import annotations

from fusionzoo.metrics.base import Metric, ModelContext, register_metric


@register_metric
class GFlopsForward(Metric):
    """gflops_forward = F(B) / B / 10⁹, F(B) = FLOPs of one eval-mode forward at the training batch
    size B, counted by ``torch.utils.flop_counter.FlopCounterMode`` (2 · MAC of every matmul,
    convolution and attention product, the CPU fused attention kernel included; elementwise ops,
    norms and softmax count 0). Input: the run's token counts (text: the test split's mean length).
    """

    name = "gflops_forward"
    description = "forward GFLOPs per sample (FlopCounterMode, 2·MAC)"
    direction = "min"
    kind = "model"

    def compute(self, ctx: ModelContext) -> dict[str, float]:
        from fusionzoo.metrics._flops import forward_flops  # torch-heavy: imported when measured

        size = max(1, int(ctx.batch_size))
        return {"gflops_forward": forward_flops(ctx.model, ctx.batch(size)) / size / 1e9}
