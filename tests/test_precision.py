"""``--precision``: the auto rule, bf16 autocast with fp32 weights and losses, the run identity, bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from fusionzoo.cli.bench import bench
from fusionzoo.testing.token_features import synthetic_features
from fusionzoo.train import precision as precision_module
from fusionzoo.train.config import RunConfig
from fusionzoo.train.precision import (
    AUTO_BF16_MIN_DIM,
    cpu_has_native_bf16,
    precision_name,
    resolve_precision,
)
from fusionzoo.train.trainer import Trainer

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
TINY = {"dim": 16, "epochs": 2, "batch_size": 32, "lr": 3e-3, "device": "cpu"}
TINY_DATA = ["size=240", "n_colours=2", "n_shapes=1", "n_genders=1", "n_materials=2"]


def test_the_auto_rule(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    assert AUTO_BF16_MIN_DIM is None and resolve_precision("auto", CPU, 4096) == (None, False)  # CPU: fp32
    monkeypatch.setattr(precision_module, "AUTO_BF16_MIN_DIM", 256)  # the width rule, where enabled
    assert resolve_precision("auto", CPU, 256) == (torch.bfloat16, False)
    assert resolve_precision("auto", CPU, 255) == (None, False)  # narrow: fp32
    assert resolve_precision("fp32", CPU, 1024) == (None, False)
    assert resolve_precision("bf16", CPU, 8) == (torch.bfloat16, False)  # explicit: whatever the width
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", CPU, 1024) == (None, False)  # emulated bf16 is slower than fp32
    assert resolve_precision("bf16", CPU, 8) == (torch.bfloat16, False)
    # CUDA: bf16 where the GPU has it, else fp16 with a grad scaler; whatever the width
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", CUDA, 8) == (torch.bfloat16, False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", CUDA, 8) == (torch.float16, True)
    assert resolve_precision("fp16", CUDA, 8) == (torch.float16, True)
    with pytest.raises(ValueError, match="fp16 runs on CUDA only"):
        resolve_precision("fp16", CPU, 8)
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, fp16"):
        resolve_precision("half", CPU, 8)
    assert [precision_name(d) for d in (None, torch.bfloat16, torch.float16)] == ["fp32", "bf16", "fp16"]


def test_native_bf16_detection_agrees_with_the_cpu_flags():
    flags = precision_module._cpuinfo_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo flags on this machine")
    assert cpu_has_native_bf16() == bool(flags & {"avx512_bf16", "amx_bf16"})


def test_precision_is_an_execution_field_and_amp_is_read_as_precision():
    base = RunConfig(fusion="film", **TINY)
    assert {base.replace(precision=p).config_hash() for p in ("auto", "fp32", "bf16")} == {base.config_hash()}
    assert RunConfig.from_dict({"amp": "off"}).precision == "fp32"  # older results and checkpoints
    assert RunConfig.from_dict({"amp": "bf16"}).precision == "bf16"
    assert RunConfig.from_dict({"amp": "auto", "precision": "fp32"}).precision == "fp32"
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, fp16, got 'fp64'"):
        RunConfig(precision="fp64")
    with pytest.raises(ValueError, match="compile must be one of auto, on, off"):
        RunConfig(compile="yes")


def test_bf16_trains_with_fp32_master_weights_and_losses():
    """bf16 autocast reaches the matmuls in training and evaluation; weights, optimiser state, the loss
    and the logits handed to the metrics stay fp32; the numbers stay close to fp32's."""
    data = synthetic_features(128, 48, 48, seed=0)
    seen: dict[str, set[torch.dtype]] = {"train": set(), "eval": set()}
    runs = {}
    for precision in ("fp32", "bf16"):
        trainer = Trainer(RunConfig(fusion="concat_mlp", precision=precision, seed=0, **TINY), data)
        if precision == "bf16":
            linear = next(m for m in trainer.model.fusion.modules() if isinstance(m, torch.nn.Linear))
            linear.register_forward_hook(lambda m, i, o: seen["train" if m.training else "eval"].add(o.dtype))
        runs[precision] = (trainer, trainer.fit())
    trainer, result = runs["bf16"]
    assert trainer.autocast_dtype is torch.bfloat16
    assert seen == {"train": {torch.bfloat16}, "eval": {torch.bfloat16}}
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}
    assert {v.dtype for s in trainer.optimizer.state.values() for v in s.values() if v.dim()} == {
        torch.float32
    }
    assert result.status == "ok" and result.metrics
    fp32 = runs["fp32"][1]
    first_bf16, first_fp32 = result.history[0]["train_loss"], fp32.history[0]["train_loss"]
    assert first_bf16 != first_fp32  # another precision really ran ...
    assert first_bf16 == pytest.approx(first_fp32, rel=2e-2)  # ... with bf16's ~3 significant digits


def _bench_args(root: Path, *extra: str) -> list[str]:
    args = ["--data-dir", str(root), "--fusions", "concat_mlp", "--seeds", "0", "--no-unimodal"]
    for option in TINY_DATA:
        args += ["--data-option", option]
    return [*args, "--epochs", "1", "--dim", "16", "--batch-size", "32", "--jobs", "1", *extra]


def test_bench_records_the_precision_and_refuses_fp16_on_a_cpu(tmp_path):
    out = tmp_path / "runs"
    refused = CliRunner().invoke(bench, [*_bench_args(tmp_path, "--precision", "fp16", "--device", "cpu"),
                                         "--out", str(out)])  # fmt: skip
    assert refused.exit_code == 2
    assert "--precision / [train] precision: precision fp16 runs on CUDA only" in refused.output
    assert not out.exists()  # refused before any work

    done = CliRunner().invoke(bench, [*_bench_args(tmp_path, "--precision", "bf16"), "--out", str(out)])
    assert done.exit_code == 0, done.output
    table = pd.read_parquet(out / "results.parquet")
    assert list(table["regime"]) == ["world=1,precision=bf16"] and list(table["status"]) == ["ok"]
    again = CliRunner().invoke(bench, [*_bench_args(tmp_path, "--precision", "fp32"), "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "precision bf16 → fp32" in again.output  # another precision is another run, never reused
    table = pd.read_parquet(out / "results.parquet")
    assert sorted(table["regime"]) == ["world=1,precision=bf16", "world=1,precision=fp32"]


# ------------------------------------------------------------------------------------------- compile
def test_compile_on_trains_the_same_run_through_inductor():
    """``compile = on``: later steps and evaluation go through the compiled forward; the results match
    the eager run's to float rounding (fused kernels round differently, amplified over the steps)."""
    from fusionzoo.results.identity import regime_changes, training_regime
    from fusionzoo.train.compiled import use_compile

    data = synthetic_features(96, 48, 48, seed=0)
    config = RunConfig(fusion="concat_mlp", head="mlp", seed=0, **{**TINY, "epochs": 1})
    eager = Trainer(config.replace(compile="off"), data).fit()
    trainer = Trainer(config.replace(compile="on"), data)
    compiled = trainer.fit()
    assert trainer.forward is not trainer.model.forward_batch and compiled.status == "ok"
    assert compiled.history[0]["train_loss"] == pytest.approx(eager.history[0]["train_loss"], rel=2e-3)
    assert compiled.metrics["accuracy"] == pytest.approx(eager.metrics["accuracy"], abs=0.03)

    assert not use_compile("auto", CPU) and use_compile("on", CPU) and not use_compile("off", CUDA)
    assert training_regime(config.replace(compile="on", precision="fp32")) == (
        "world=1,precision=fp32,compile=inductor"
    )
    assert training_regime(config.replace(compile="auto", precision="fp32")) == "world=1,precision=fp32"
    assert regime_changes("world=1,precision=fp32", "world=1,precision=fp32,compile=inductor") == (
        "compile eager → inductor"
    )


def test_compiled_moe_experts_keep_their_grouped_kernel_eager():
    """torch's meta kernel of grouped_mm refuses fp32 on a CPU, so tracing the MoE experts fails; the
    compiled forward leaves that kernel eager and computes what the eager model does, gradients too."""
    from fusionzoo.metrics._flops import synthetic_batch
    from fusionzoo.train.compiled import compile_forward
    from fusionzoo.train.model import FusionModel

    config = RunConfig(fusion="fluid:queries=4,layers=1", head="moe:experts=4", dim=16, device="cpu")
    model = FusionModel.from_config(config, image_dim=32, text_dim=32, num_classes=5, num_image_tokens=6)
    batch = synthetic_batch(8, 6, 32, 5, 32, 5)
    model.eval()  # no dropout: both passes see the same function (autograd stays on)
    eager = model.forward_batch(batch)
    (eager.logits.sum() + sum(eager.aux_losses.values())).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    compiled = compile_forward(model, backend="aot_eager")(batch)  # dynamo + autograd tracing, no codegen
    (compiled.logits.sum() + sum(compiled.aux_losses.values())).backward()
    torch.testing.assert_close(compiled.logits, eager.logits, rtol=1e-5, atol=1e-6)
    for name, grad in grads.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, rtol=1e-4, atol=1e-6)
