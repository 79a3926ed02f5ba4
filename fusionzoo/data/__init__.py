"""Dataset formats and loading helpers: the GLAMI-1M format, the embedded generator, image-text CSVs.

Which datasets exist is the dataset registry's business (``fusionzoo.datasets``, one backend per
file); :func:`load_dataset` loads any registered one as a :class:`~fusionzoo.data.base.DatasetSplits`.
"""

from __future__ import annotations

from typing import Any

from fusionzoo.data.base import COLUMNS, DataError, DatasetSplits, DataWarning

__all__ = ["COLUMNS", "DataError", "DataWarning", "DatasetSplits", "load_dataset", "loader_option_names"]


def load_dataset(name: str = "synth", **options: Any) -> DatasetSplits:
    """Load a registered dataset by name as train/val/test frames.

    Common options: ``data_dir``, ``limit``/``per_class_cap`` (train subsampling keeping the class
    distribution; val and test are scaled by the same ratio), ``label_source`` (``all`` | ``human``),
    ``geos``, ``val_fraction`` and ``seed`` (stratified validation carve-out), ``on_bad_image``
    (``skip`` | ``fail``); the backend's own options are listed by ``fusionzoo list datasets`` (an
    unknown one is an error naming the valid ones). The data dir is ``data_dir``, else
    ``$FUSIONZOO_DATA``, else the user cache dir.
    """
    from fusionzoo.datasets.base import load_dataset as load

    return load(name, **{k: v for k, v in options.items() if v is not None or k == "data_dir"})


def loader_option_names(name: str) -> list[str]:
    """The backend-specific keyword options ``load_dataset(name, ...)`` accepts."""
    from fusionzoo.registry import REGISTRIES

    return REGISTRIES["dataset"].get(name).obj.option_names()
