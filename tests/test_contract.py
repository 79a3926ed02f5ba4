"""Every registered plugin of every kind (built-ins, the registry/ plugin, any installed plugin) meets
its contract, at the tiny sizes it declares in ``test_config``; the fusion checker catches violations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fusionzoo import registry
from fusionzoo.fusions.concat_mlp import ConcatMLP
from fusionzoo.interface import Fusion, FusionOutput, Head, HeadOutput
from fusionzoo.testing import ContractError, check_fusion, check_head, check_plugin, check_search_space

EVERY_PLUGIN = [(kind, name) for kind in registry.KINDS for name in registry.REGISTRIES[kind].names()]


@pytest.mark.parametrize(("kind", "name"), EVERY_PLUGIN, ids=[f"{k}-{n}" for k, n in EVERY_PLUGIN])
def test_plugin_contract(kind, name, tmp_path):
    check_plugin(kind, name, tmp_path)


@pytest.mark.parametrize(("kind", "name"), EVERY_PLUGIN, ids=[f"{k}-{n}" for k, n in EVERY_PLUGIN])
def test_plugin_has_a_description(kind, name):
    assert registry.get_entry(kind, name).description, f"{kind} {name} needs a description (fusionzoo list)"


def test_the_registry_wide_suite_is_not_vacuous():
    counts = {kind: len(registry.REGISTRIES[kind].names()) for kind in registry.KINDS}
    assert all(counts[k] for k in ("fusion", "head", "dataset", "metric", "reporter", "launcher")), counts


def test_tiny_sizes_live_with_the_plugins():
    assert registry.get_entry("fusion", "fluid").test_config == {
        "queries": 4,
        "layers": 1,
        "bottleneck_queries": 2,
    }
    assert registry.get_entry("head", "moe").test_config == {"experts": 4, "top_k": 2}
    assert registry.get_entry("fusion", "gated").test_config == {}


@pytest.mark.parametrize("name", registry.list_fusions())
def test_fusion_declares_kind_and_description(name):
    cls = registry.get_fusion_class(name)
    assert getattr(cls, "kind", None) in ("vector", "token"), f"{name} must declare kind vector|token"
    assert registry.get_entry("fusion", name).description, f"{name} needs a description"


@pytest.mark.parametrize("name", registry.list_fusions())
def test_vector_fusions_return_one_token(name):
    fusion = registry.create_fusion(name, 16, **registry.get_entry("fusion", name).test_config)
    fusion.eval()
    out = fusion(torch.randn(2, 3, 16), torch.randn(2, 4, 16))
    if fusion.kind == "vector":
        assert out.tokens.shape == (2, 1, 16)
    else:
        assert out.tokens.shape[1] >= 1


PLUGINS = [("fusion", n) for n in registry.list_fusions()] + [("head", n) for n in registry.list_heads()]


@pytest.mark.parametrize(("kind", "name"), PLUGINS)
def test_search_space_suggests_valid_hyperparameters(kind, name):
    """The declared space: every key a constructor hyperparameter, every value an optuna distribution,
    buildable at both ends; built-ins declare (no legacy ``search_space(trial)``)."""
    from optuna.distributions import BaseDistribution

    from fusionzoo.tune.plugin_space import declared_distributions, uses_legacy_space

    check_search_space(name, kind)
    entry = registry.get_entry(kind, name)
    if entry.source == "built-in":
        assert not uses_legacy_space(entry.obj), f"{name} still defines search_space(trial)"
        declared = declared_distributions(entry.obj)
        assert set(declared) <= set(registry.hyperparameters(entry.obj))
        assert all(isinstance(d, BaseDistribution) for d in declared.values())


# ------------------------------------------------------------------ the checker itself catches violations
class DeadParameterFusion(Fusion):
    """Like the published transformer_concat: a parameter that never reaches the output."""

    kind = "vector"
    description = "broken on purpose"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.proj = nn.Linear(dim, dim)
        self.modality_token = nn.Parameter(torch.zeros(dim))

    def forward(self, image, text, image_mask=None, text_mask=None):
        return FusionOutput(tokens=self.proj(image.mean(1) + text.mean(1)).unsqueeze(1))


class NaNOnMissingFusion(Fusion):
    """Divides by the number of real tokens without a guard: NaN when a modality is missing."""

    kind = "vector"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, image, text, image_mask=None, text_mask=None):
        m = torch.ones(image.shape[:2]) if image_mask is None else image_mask.float()
        v = (image * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True)
        return FusionOutput(tokens=self.proj(v + text.mean(1)).unsqueeze(1))


class SamplingInEvalFusion(Fusion):
    """Samples in eval (the published energy_aware_adaptive bug)."""

    kind = "vector"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, image, text, image_mask=None, text_mask=None):
        noise = torch.rand(image.shape[0], 1)
        return FusionOutput(tokens=self.proj(image.mean(1) * noise + text.mean(1)).unsqueeze(1))


class WrongShapeFusion(Fusion):
    kind = "vector"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, image, text, image_mask=None, text_mask=None):
        return FusionOutput(tokens=self.proj(image.mean(1)))  # (B, D): missing token axis


class VectorAuxFusion(Fusion):
    kind = "vector"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, image, text, image_mask=None, text_mask=None):
        out = self.proj(image.mean(1) + text.mean(1))
        return FusionOutput(tokens=out.unsqueeze(1), aux_losses={"bad": out.pow(2).mean(1)})


@pytest.mark.parametrize(
    ("cls", "rule"),
    [
        (DeadParameterFusion, "gradients reach every trainable parameter"),
        (NaNOnMissingFusion, "finite output when a modality is missing"),
        (SamplingInEvalFusion, "eval() is deterministic"),
        (WrongShapeFusion, "tokens have shape (B, Nf, D)"),
        (VectorAuxFusion, "aux losses are scalar tensors"),
    ],
)
def test_checker_names_the_violated_rule(cls, rule):
    with pytest.raises(ContractError) as info:
        check_fusion(cls)
    assert info.value.rule == rule
    assert cls.__name__ in str(info.value)


class WrongLogitsHead(Head):
    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__(dim, num_classes)
        self.proj = nn.Linear(dim, num_classes + 1)

    def forward(self, tokens, mask=None):
        return HeadOutput(logits=self.proj(tokens.mean(1)))


def test_head_checker_rejects_wrong_logits():
    with pytest.raises(ContractError, match=r"logits have shape \(B, C\)"):
        check_head(WrongLogitsHead)


# ------------------------------------------------------------------ search-space declarations
class UnknownKeyFusion(ConcatMLP):
    @classmethod
    def search_space_distributions(cls):
        from optuna.distributions import FloatDistribution

        return {"dropout": FloatDistribution(0.0, 0.5), "drop_out": FloatDistribution(0.0, 0.5)}


class NotADistributionFusion(ConcatMLP):
    @classmethod
    def search_space_distributions(cls):
        return {"dropout": (0.0, 0.5)}


class UnbuildableRangeFusion(ConcatMLP):
    @classmethod
    def search_space_distributions(cls):
        from optuna.distributions import CategoricalDistribution

        return {"pool": CategoricalDistribution(["mean", "median"])}


class LegacyUnknownKwargFusion(ConcatMLP):
    @classmethod
    def search_space(cls, trial):
        return {"width": trial.suggest_int("width", 8, 64)}


@pytest.mark.parametrize(
    ("cls", "rule"),
    [
        (UnknownKeyFusion, "search space keys are constructor hyperparameters"),
        (NotADistributionFusion, "search space values are optuna distributions"),
        (UnbuildableRangeFusion, "search space values build the plugin"),
        (LegacyUnknownKwargFusion, "search space keys are constructor hyperparameters"),
    ],
)
def test_search_space_checker_names_the_violated_rule(cls, rule):
    pytest.importorskip("optuna")
    with pytest.raises(ContractError) as info:
        check_search_space(cls)
    assert info.value.rule == rule and cls.__name__ in str(info.value)
