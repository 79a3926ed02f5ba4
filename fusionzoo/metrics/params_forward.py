"""Trainable parameters on the forward path (efficiency)."""

from __future__ import annotations

from fusionzoo.metrics.base import Metric, ModelContext, register_metric


@register_metric
class ParamsForward(Metric):
    """params = Σ numel(p) over trainable parameters p that receive a gradient in a training step.

    One forward + backward (CE + aux losses, train mode) on a batch of 2; a parameter whose ``grad``
    stays ``None`` is not on the forward path (e.g. a projection a unimodal fusion never reads) and is
    not counted. Shared parameters count once.
    """

    name = "params"
    description = "trainable parameters on the forward path (they get a gradient)"
    direction = "min"
    kind = "model"

    def compute(self, ctx: ModelContext) -> dict[str, float]:
        from fusionzoo.metrics._flops import training_loss  # torch-heavy: imported when measured

        model = ctx.model
        model.zero_grad(set_to_none=True)
        model.train()
        training_loss(model, ctx.batch(2)).backward()
        seen: set[int] = set()
        total = 0
        for param in model.parameters():
            if param.requires_grad and param.grad is not None and id(param) not in seen:
                seen.add(id(param))
                total += param.numel()
        model.zero_grad(set_to_none=True)
        model.eval()
        return {"params": float(total)}
