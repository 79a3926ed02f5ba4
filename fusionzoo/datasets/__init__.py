"""Built-in dataset backends: every module in this package registers one on import (one per file).

A backend (:class:`fusionzoo.datasets.base.DatasetBackend`) owns its options, its default encoders, its
status/verify and its loading; ``--dataset NAME`` accepts any registered backend, third-party ones
included (entry-point group ``fusionzoo.datasets``). :func:`load_dataset` loads any of them by name.
"""

import importlib
import pkgutil

from fusionzoo.datasets.base import load_dataset, loader_option_names

__all__ = ["load_dataset", "loader_option_names"]

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
