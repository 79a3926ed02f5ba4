"""Test helpers shipped with fusionzoo: a contract checker for every plugin kind, and tiny fixtures.

    from fusionzoo.testing import check_fusion, check_head, check_dataset, check_metric
    check_fusion(MyFusion)               # a class, an instance, or a registered name / spec string
    check_dataset("csv", tmp_path)       # datasets, reporters: a scratch folder (default: a temporary one)
    check_plugin("metric", "top5")       # any kind, with the plugin's own ``test_config`` sizes

Each checker raises :class:`ContractError` naming the plugin and the rule it broke; the main test suite
runs them over every registered plugin (tests/test_contract.py), and plugin authors call them in their
own tests. Submodules (each imported on first use, so a fixture does not pull in torch):

    contracts           ContractError, check_fusion, check_head, validate_{fusion,head}_output
    dataset_contract    check_dataset               (DatasetBackend, its example())
    metric_contract     check_metric, example_context
    protocol_contract   check_protocol, example_batch
    reporter_contract   check_reporter, example_results (a hand-built runs table)
    launcher_contract   check_launcher, example_tasks
    glami_files         the GLAMI-1M layout on disk: rows, CSVs, JPEGs, the release zip
    range_server        a loopback HTTP server honouring Range (download tests)
    tiny_splits         a tiny COLUMNS-format CSV dataset with JPEGs, read as DatasetSplits
    tiny_encoders       a tiny timm ViT and a tiny BERT saved to folders, loadable offline
    token_features      synthetic token features with a controllable signal per modality
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

__all__ = [
    "CHECKERS",
    "ContractError",
    "check_dataset",
    "check_fusion",
    "check_head",
    "check_launcher",
    "check_metric",
    "check_plugin",
    "check_protocol",
    "check_reporter",
    "check_search_space",
    "validate_fusion_output",
    "validate_head_output",
]

_EXPORTS = {
    "ContractError": "contracts",
    "check_fusion": "contracts",
    "check_head": "contracts",
    "check_search_space": "contracts",
    "validate_fusion_output": "contracts",
    "validate_head_output": "contracts",
    "check_dataset": "dataset_contract",
    "check_metric": "metric_contract",
    "check_protocol": "protocol_contract",
    "check_reporter": "reporter_contract",
    "check_launcher": "launcher_contract",
}

#: kind -> (module, checker, whether it takes a scratch folder)
CHECKERS: dict[str, tuple[str, str, bool]] = {
    "fusion": ("contracts", "check_fusion", False),
    "head": ("contracts", "check_head", False),
    "dataset": ("dataset_contract", "check_dataset", True),
    "metric": ("metric_contract", "check_metric", False),
    "protocol": ("protocol_contract", "check_protocol", False),
    "reporter": ("reporter_contract", "check_reporter", True),
    "launcher": ("launcher_contract", "check_launcher", False),
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def check_plugin(kind: str, name: str, folder: str | Path | None = None, **hp: Any) -> None:
    """Run the contract checker of ``kind`` on the registered plugin ``name`` (a spec string works),
    built with its declared ``test_config`` (tiny sizes, as timm's ``default_cfgs``) updated by ``hp``."""
    from fusionzoo import registry

    reg = registry.registry_of(kind)
    entry = reg.get(registry.parse_spec(name)[0])
    module, checker, takes_folder = CHECKERS[reg.kind]
    check = getattr(importlib.import_module(f"{__name__}.{module}"), checker)
    options = {**entry.test_config, **hp}
    if takes_folder:
        check(name, folder, **options)
    else:
        check(name, **options)
