"""Weight decay: the standard split (no decay on biases, norms, embeddings, learnable queries)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fusionzoo.train.config import RunConfig
from fusionzoo.train.model import FusionModel
from fusionzoo.train.optim import param_groups


def _decayed(model, encoder=None, config=None):
    config = config or RunConfig(weight_decay=0.05, lr=1e-3, backbone_lr=1e-5)
    if encoder is not None:
        model.encoder = encoder  # a finetune run's model owns its encoder
    names = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
    decay, no_decay, lrs = set(), set(), {}
    for group in param_groups(model, config):
        for param in group["params"]:
            name = names[id(param)]
            (decay if group["weight_decay"] else no_decay).add(name)
            lrs[name] = group["lr"]
            if group["weight_decay"]:
                assert group["weight_decay"] == config.weight_decay
    assert not decay & no_decay
    assert decay | no_decay == set(names.values())  # every trainable parameter is in exactly one group
    return decay, no_decay, lrs


def _model(fusion, head, **options):
    return FusionModel(
        fusion, head, image_dim=6, text_dim=5, dim=8, num_classes=3, num_image_tokens=4, **options
    )


def test_concat_mlp_with_mlp_head_decays_only_the_linear_weights():
    decay, no_decay, _ = _decayed(_model("concat_mlp", "mlp", position_embeddings=True))
    assert decay == {
        "image_proj.linear.weight",
        "text_proj.linear.weight",
        "fusion.mlp.net.0.weight",
        "fusion.mlp.net.3.weight",
        "head.mlp.net.0.weight",
        "head.mlp.net.4.weight",
    }
    # position embeddings (2-D), modality embeddings, biases and LayerNorm weights do not decay
    assert {
        "image_proj.position",
        "text_proj.position",
        "image_proj.modality",
        "head.mlp.net.1.weight",
    } <= no_decay


def test_fluid_with_moe_head_keeps_queries_and_expert_biases_out_of_decay():
    decay, no_decay, _ = _decayed(_model("fluid:queries=2,layers=1,heads=2", "moe:experts=2"))
    for name in (
        "fusion.image_qformer.queries",
        "fusion.text_qformer.queries",
        "fusion.bottleneck.queries",
        "head.experts.b1",
        "head.experts.b2",
        "fusion.image_qformer.blocks.0.attn.in_proj_bias",
        "fusion.image_qformer.blocks.0.norm_attn.weight",
        "head.router.1.weight",  # the router's LayerNorm
    ):
        assert name in no_decay, name
    assert decay == {
        "image_proj.linear.weight",
        "text_proj.linear.weight",
        *(
            f"fusion.{block}.blocks.0.{name}"
            for block in ("image_qformer", "text_qformer", "bottleneck")
            for name in ("attn.in_proj_weight", "attn.out_proj.weight", "ffn.0.weight", "ffn.3.weight")
        ),
        "fusion.gate.net.0.weight",
        "fusion.gate.net.2.weight",
        "head.router.0.weight",
        "head.router.4.weight",
        "head.experts.w1",
        "head.experts.w2",
    }


def test_type_embeddings_and_cls_tokens_declare_themselves():
    _, no_decay, _ = _decayed(_model("qformer:queries=2,layers=1,heads=2", "linear"))
    assert {"fusion.concat.type_embeddings", "fusion.qformer.queries"} <= no_decay
    _, no_decay, _ = _decayed(_model("early_fusion:layers=1,heads=2,output=cls", "linear"))
    assert {"fusion.cls_token", "fusion.concat.type_embeddings"} <= no_decay
    _, no_decay, _ = _decayed(_model("transformer_concat:layers=1,heads=2", "linear"))
    assert "fusion.modality_embeddings" in no_decay


class _Encoder(nn.Module):
    """Stands in for a finetuned encoder: a timm-style ``no_weight_decay()`` and an nn.Embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(3, 4))
        self.tokens = nn.Embedding(10, 4)
        self.proj = nn.Linear(4, 4)
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed"}


def test_the_finetuned_encoder_keeps_its_own_learning_rate_and_the_same_split():
    model = _model("concat_mlp", "mlp")
    decay, no_decay, lrs = _decayed(model, _Encoder())
    assert {"encoder.proj.weight"} == {n for n in decay if n.startswith("encoder.")}
    assert {"encoder.pos_embed", "encoder.tokens.weight", "encoder.proj.bias"} <= no_decay
    assert not any(n.startswith("encoder.frozen") for n in decay | no_decay)
    assert {lrs[n] for n in lrs if n.startswith("encoder.")} == {1e-5}
    assert {lrs[n] for n in lrs if not n.startswith("encoder.")} == {1e-3}


def test_schedule_warms_up_from_zero_then_cosine_decays_to_zero():
    import math

    import torch

    from fusionzoo.train.config import RunConfig
    from fusionzoo.train.optim import make_scheduler

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    total, config = 100, RunConfig(warmup=0.1, lr=0.1)
    scheduler = make_scheduler(optimizer, config, total)
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    warmup = 10
    assert lrs[0] == 0.0 and lrs[5] == pytest.approx(0.1 * 5 / warmup)
    assert lrs[warmup] == pytest.approx(0.1)  # the peak, right after warm-up
    middle = warmup + (total - warmup) // 2
    assert lrs[middle] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(lrs[warmup:], lrs[warmup + 1 :], strict=False))  # monotone decay
    assert lrs[-1] == pytest.approx(
        0.1 * 0.5 * (1 + math.cos(math.pi * (total - 1 - warmup) / (total - warmup)))
    )
