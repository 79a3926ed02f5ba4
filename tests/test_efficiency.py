"""Efficiency metrics (kind = "model"): registered, FLOPs against hand counts, the CPU attention
kernel counted, forward-path parameters, memory and timing figures that make sense."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fusionzoo import registry
from fusionzoo.evaluation.runner import measure_efficiency
from fusionzoo.metrics._flops import forward_flops, train_step_flops
from fusionzoo.metrics.base import ModelContext, metrics_of_kind
from fusionzoo.metrics.peak_memory import LiveTensorBytes
from fusionzoo.train.model import FusionModel

B, LI, EI, LT, ET, D, C = 8, 5, 12, 7, 10, 16, 6
MODEL_METRICS = {"params", "gflops_forward", "gflops_train_step", "latency", "throughput", "peak_memory"}


def model(fusion: str = "concat_mlp", head: str = "mlp") -> FusionModel:
    torch.manual_seed(0)
    return FusionModel(fusion, head, image_dim=EI, text_dim=ET, dim=D, num_classes=C, num_image_tokens=LI)


def context(m: FusionModel, batch_size: int = B) -> ModelContext:
    return ModelContext(m, LI, LT, EI, ET, C, batch_size, device="cpu", threads=1)


def test_every_efficiency_metric_is_a_registered_model_metric():
    names = {m.name for m in metrics_of_kind("model")}
    assert names == MODEL_METRICS
    for name in names:
        entry = registry.get_entry("metric", name)
        assert entry.obj.__module__.startswith("fusionzoo.metrics.") and entry.obj.__doc__


def test_flop_counter_matches_a_hand_count_for_concat_mlp():
    m = model()
    ctx = context(m)
    counted = forward_flops(m, ctx.batch(B))
    macs = (
        LI * EI * D + LT * ET * D  # projections Ei→D, Et→D (per token)
        + (2 * D) * (2 * D) + (2 * D) * D  # concat MLP: [v; t] (2D) → 2D hidden → D
        + D * (2 * D) + (2 * D) * C  # MLP head: D → 2D → C
    )  # fmt: skip
    hand = 2 * B * macs  # FLOPs = 2 · MAC
    assert abs(counted - hand) / hand < 0.01, (counted, hand)
    # a training step: backward = 2 × forward for each linear layer, except that the input-gradient
    # of the first layer of each modality (the projections' inputs) is not needed
    step = train_step_flops(m, ctx.batch(B))
    assert 2.5 * hand < step < 3.0 * hand


def test_cpu_fused_attention_is_counted():
    attention = nn.MultiheadAttention(D, 4, batch_first=True)
    queries, tokens = torch.randn(2, 3, D), torch.randn(2, 9, D)
    with FlopCounterMode(display=False) as counter:
        attention(queries, tokens, tokens, need_weights=False)
    counts = {str(k): v for k, v in counter.get_flop_counts()["Global"].items()}
    assert counts.get("aten._scaled_dot_product_flash_attention_for_cpu", 0) > 0
    # per batch of 2: q projection, k and v projections, QKᵀ and AV (each B·Lq·Lk·D MACs), out projection
    hand = 2 * (2 * 3 * D * D + 2 * 2 * 9 * D * D + 2 * (2 * 3 * 9 * D) + 2 * 3 * D * D)
    assert counter.get_total_flops() == hand


def test_fluid_costs_more_than_concat_mlp():
    fluid = model("fluid:queries=4,layers=1", "moe:experts=4,top_k=2")
    concat = model()
    assert forward_flops(fluid, context(fluid).batch(B)) > forward_flops(concat, context(concat).batch(B))


def test_moe_experts_are_counted_whatever_the_dispatch(monkeypatch):
    """The default dispatch (grouped_mm) counts the experts as the per-expert loop does (they were 0)."""
    from fusionzoo.layers.moe import ExpertMLPs

    m = model("concat_mlp", "moe:experts=4,top_k=2")
    ctx = context(m)
    auto = (forward_flops(m, ctx.batch(B)), train_step_flops(m, ctx.batch(B)))
    looped = ExpertMLPs.forward
    monkeypatch.setattr(
        ExpertMLPs, "forward", lambda self, *a, **k: looped(self, *a, **{**k, "dispatch": "loop"})
    )
    loop = (forward_flops(m, ctx.batch(B)), train_step_flops(m, ctx.batch(B)))
    # grouped pads the C = 6 outputs to 8 columns (alignment); otherwise the same counts
    hidden, routed = 2 * D, B * 2  # concat_mlp hands the head one vector per sample; top-2
    padding = 2 * routed * hidden * (-C % 4)
    assert auto[0] == loop[0] + padding and auto[1] == loop[1] + 3 * padding
    experts_forward = 2 * routed * (D * hidden + hidden * C)
    assert loop[0] > experts_forward and auto[0] > experts_forward


def test_params_count_only_what_the_forward_path_uses():
    m = model()
    m.unused = nn.Linear(100, 100)  # not on the forward path
    params = registry.create("metric", "params").compute(context(m))["params"]
    expected = sum(p.numel() for n, p in m.named_parameters() if not n.startswith("unused."))
    assert params == expected
    assert all(p.grad is None for p in m.parameters())  # the measurement leaves no gradients behind


def test_live_tensor_bytes_tracks_the_high_water_mark():
    with LiveTensorBytes() as tracker:
        a = torch.ones(1000, dtype=torch.float32)  # 4000 bytes
        b = torch.ones(500, dtype=torch.float32)  # 2000 bytes, peak 6000
        del a
        c = torch.ones(250, dtype=torch.float32)  # live 3000
        view = b[:10]  # a view allocates nothing
    assert tracker.peak == 6000 and tracker.live == 3000
    del b, c, view


def test_peak_memory_counts_the_optimizer_step_and_its_state():
    """AdamW keeps two moments per parameter: the training-step peak is at least 2× the parameter bytes
    above forward + backward alone, and measuring leaves the weights as they were."""
    from fusionzoo.metrics._flops import training_loss

    m = model("concat_mlp:hidden_mult=4", "mlp")
    ctx = context(m, batch_size=2)
    batch = ctx.batch(2)
    params = sum(p.numel() * p.element_size() for p in m.parameters())
    held = (*m.parameters(), *m.buffers(), *batch.values())
    with LiveTensorBytes() as tracker:  # the step without the optimiser
        training_loss(m.train(), batch).backward()
    forward_backward = sum(t.numel() * t.element_size() for t in held) + tracker.peak
    m.zero_grad(set_to_none=True)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    peak = registry.create("metric", "peak_memory").compute(ctx)["peak_memory_mb"] * 2**20
    assert peak >= forward_backward + 2 * params
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert all(p.grad is None for p in m.parameters()) and not m.training


def test_one_efficiency_row_has_every_column_and_sensible_values():
    m = model()
    parts = {"fusion": "concat_mlp", "head": "mlp", "dim": D, "image_tokens": LI, "text_tokens": LT,
             "image_dim": EI, "text_dim": ET, "num_classes": C, "batch_size": B, "device": "cpu"}  # fmt: skip
    row = measure_efficiency(m, parts, torch.device("cpu"), threads=1)
    for column in ("params", "gflops_forward", "gflops_train_step", "latency_p50_ms", "latency_p95_ms",
                   "throughput", "peak_memory_mb", "efficiency_key", "threads", "torch_version"):  # fmt: skip
        assert column in row
    assert 0 < row["latency_p50_ms"] <= row["latency_p95_ms"]
    assert row["throughput"] > 0 and row["threads"] == 1
    resident = sum(p.numel() * 4 for p in m.parameters()) / 2**20
    assert row["peak_memory_mb"] > resident
    assert row["gflops_train_step"] * 1e9 == pytest.approx(train_step_flops(m, context(m).batch(B)))
