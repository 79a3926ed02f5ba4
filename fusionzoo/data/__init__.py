"""Dataset formats and loading helpers: the GLAMI-1M format, the embedded generator, image-text CSVs.

These helpers never import the dataset backends: which datasets exist, and loading one by name, is the
dataset registry's business (:func:`fusionzoo.datasets.load_dataset`, one backend per file in
``fusionzoo/datasets/``), which builds on the helpers here.
"""

from __future__ import annotations

from fusionzoo.data.base import COLUMNS, DataError, DatasetSplits, DataWarning

__all__ = ["COLUMNS", "DataError", "DataWarning", "DatasetSplits"]
