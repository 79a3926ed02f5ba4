"""Registry: decorators, wildcards, spec strings, errors, entry-point plugins, local plugins."""

from __future__ import annotations

import sys
import textwrap
import warnings

import pytest

from fusionzoo import registry
from fusionzoo.registry import RegistryError


def test_list_is_sorted_and_supports_wildcards_and_exclude():
    names = registry.list_fusions()
    assert names == sorted(names)
    assert "concat_mlp" in names
    assert registry.list_fusions("concat*") == [n for n in names if n.startswith("concat")]
    assert "concat_mlp" not in registry.list_fusions("*", exclude="concat*")
    assert registry.list_fusions(["concat*", "lmf"]) == sorted({*registry.list_fusions("concat*"), "lmf"})
    assert registry.list_heads() == sorted(registry.list_heads())


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("fluid", ("fluid", {})),
        ("fluid:gating=false,queries=16", ("fluid", {"gating": False, "queries": 16})),
        ("moe:experts=16,top_k=2", ("moe", {"experts": 16, "top_k": 2})),
        (
            "x:lr=1e-3,name=abc,flag=True,none=None",
            ("x", {"lr": 1e-3, "name": "abc", "flag": True, "none": None}),
        ),
        (" film : pool = max ", ("film", {"pool": "max"})),
    ],
)
def test_parse_spec(spec, expected):
    assert registry.parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["", ":a=1", "fluid:queries", "fluid:=3", "fluid:a=1,a=2"])
def test_parse_spec_rejects_malformed(spec):
    with pytest.raises(RegistryError):
        registry.parse_spec(spec)


def test_format_spec_round_trips():
    spec = registry.format_spec("fluid", {"queries": 16, "gating": False})
    assert spec == "fluid:gating=false,queries=16"
    assert registry.parse_spec(spec) == ("fluid", {"gating": False, "queries": 16})


def test_create_applies_spec_and_overrides_and_drops_none():
    fusion = registry.create_fusion("concat_mlp:dropout=0.3", 8, hidden_mult=None, pool="max")
    assert fusion.pool == "max"
    assert fusion.spec == "concat_mlp:dropout=0.3,pool=max"
    assert fusion.mlp.net[-2].p == 0.3
    assert registry.create_head("linear", 8, 3).proj.out_features == 3


def test_unknown_name_suggests_close_matches():
    with pytest.raises(
        RegistryError,
        match=r"fusion 'concat_mpl' is not registered \(did you mean 'concat_mlp'\?\)\. Registered",
    ):
        registry.create_fusion("concat_mpl", 8)
    with pytest.raises(RegistryError, match="head 'mop' is not registered"):
        registry.create_head("mop", 8, 3)


def test_unknown_hyperparameter_lists_valid_ones():
    with pytest.raises(
        RegistryError, match=r"has no hyperparameter 'nope'.*valid: dropout, hidden_mult, pool"
    ):
        registry.create_fusion("concat_mlp:nope=1", 8)


def test_hyperparameter_of_wrong_type_is_named():
    with pytest.raises(RegistryError, match=r"hyperparameter 'hidden_mult' expects float .*got 'abc'"):
        registry.create_fusion("concat_mlp:hidden_mult=abc", 8)


def test_int_given_for_float_is_accepted():
    assert registry.create_fusion("concat_mlp:hidden_mult=1", 8).mlp.net[0].out_features == 8


def test_invalid_value_from_constructor_becomes_registry_error():
    with pytest.raises(RegistryError, match="pool must be one of"):
        registry.create_fusion("concat_mlp:pool=median", 8)


def test_registry_plugin_is_found_with_its_distribution():
    entry = registry.get_entry("fusion", "lmf")
    assert entry.source == "fusionzoo-lmf"


def _fake_distribution(tmp_path, name, group_lines):
    dist = tmp_path / f"{name}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(group_lines))
    return tmp_path


@pytest.fixture
def extra_sys_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    registry.refresh_plugins()


def test_broken_entry_point_plugin_is_a_warning_and_others_still_load(extra_sys_path):
    (extra_sys_path / "good_plugin_mod.py").write_text(
        textwrap.dedent("""
        import torch
        from fusionzoo.fusions._vector import VectorFusion

        class Sum(VectorFusion):
            description = "v + t"
            def __init__(self, dim, *, scale: float = 1.0):
                super().__init__(dim)
                self.proj = torch.nn.Linear(dim, dim)
                self.scale = scale
            def fuse(self, v, t, has_image, has_text):
                return self.proj(v + t) * self.scale
    """)
    )
    _fake_distribution(
        extra_sys_path,
        "broken-fz-plugin",
        """
        [fusionzoo.fusions]
        broken = module_that_does_not_exist_xyz:Thing
    """,
    )
    _fake_distribution(
        extra_sys_path,
        "good-fz-plugin",
        """
        [fusionzoo.fusions]
        sum_fusion = good_plugin_mod:Sum
        concat_mlp = good_plugin_mod:Sum
    """,
    )
    registry.refresh_plugins()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = registry.list_fusions()
    messages = [str(w.message) for w in caught]
    assert any("'broken'" in m and "broken-fz-plugin" in m and "failed to load" in m for m in messages), (
        messages
    )
    assert any("concat_mlp" in m and "already registered by built-in" in m for m in messages), messages
    assert "sum_fusion" in names and "broken" not in names
    assert registry.get_entry("fusion", "sum_fusion").source == "good-fz-plugin"
    assert registry.get_entry("fusion", "concat_mlp").source == "built-in"  # built-in wins
    assert registry.create_fusion("sum_fusion:scale=2", 4).scale == 2.0


def test_load_plugin_from_py_path(tmp_path):
    path = tmp_path / "my_local_fusion.py"
    path.write_text(
        textwrap.dedent("""
        from fusionzoo import register_head
        from fusionzoo.heads.linear import LinearHead

        @register_head(name="local_linear_test")
        class LocalLinear(LinearHead):
            description = "a local head"
    """)
    )
    added = registry.load_plugin(str(path))
    assert added == ["head:local_linear_test"]
    assert registry.get_entry("head", "local_linear_test").source == f"local:{path}"
    cls = registry.get_entry("head", "local_linear_test").obj
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loading the same file again is silent and keeps the class
        assert registry.load_plugin(str(path)) == []
    assert registry.get_entry("head", "local_linear_test").obj is cls


def test_load_plugin_errors_are_clear(tmp_path):
    with pytest.raises(RegistryError, match="cannot be imported"):
        registry.load_plugin("no_such_module_abc.plugins")
    with pytest.raises(RegistryError, match="does not exist"):
        registry.load_plugin(str(tmp_path / "missing.py"))
    bad = tmp_path / "bad_plugin.py"
    bad.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(RegistryError, match="failed to import: RuntimeError: boom"):
        registry.load_plugin(str(bad))
    assert not any(m.startswith("fusionzoo_local_plugin_bad_plugin") for m in sys.modules)


def test_star_args_constructor_is_rejected():
    def builder(dim, *args):
        raise AssertionError("never built")

    with pytest.raises(RegistryError, match=r"\*args"):
        registry.hyperparameters(builder)
