"""Datasets: the real GLAMI-1M format, the embedded GLAMI-format synthetic dataset, any image-text CSV.

Use :func:`load_dataset`; every dataset comes back as a :class:`~fusionzoo.data.base.DatasetSplits`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from fusionzoo.data.base import COLUMNS, DataError, DatasetSplits, DataWarning

DATASETS = ("synth", "glami1m", "csv")

__all__ = ["COLUMNS", "DATASETS", "DataError", "DataWarning", "DatasetSplits", "load_dataset"]


def load_dataset(
    name: str = "synth",
    *,
    data_dir: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    per_class_cap: int | None = None,
    label_source: str = "all",
    geos: Sequence[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    on_bad_image: str = "skip",
    **loader_options: Any,
) -> DatasetSplits:
    """Load a dataset by name as train/val/test frames.

    - ``"synth"``: generate (or reuse, cached by parameters) the embedded GLAMI-format dataset under
      ``<data dir>/synth/`` and read it with the GLAMI loader. Options: the fields of
      :class:`fusionzoo.data.synth.SynthConfig` (``size``, ``image_size``, ``synth_seed`` for its
      ``seed``, ``zipf``, …) and ``out`` (a folder to generate into instead).
    - ``"glami1m"``: GLAMI-1M under ``root`` (default ``<data dir>/glami1m``); options ``root``,
      ``text_fields``, ``text_separator``, ``check_images``.
    - ``"csv"``: any image-text CSV; options ``csv`` (``"train.csv[,test.csv]"`` or a list),
      ``image_col``, ``text_cols``, ``label_col``, ``image_root``, ``item_id_col``, ``geo_col``,
      ``label_source_col``, ``test_fraction``, ``check_images``.

    Common options: ``limit``/``per_class_cap`` (train subsampling keeping the class distribution; val
    and test are scaled by the same ratio), ``label_source`` (``all`` | ``human``), ``geos``,
    ``val_fraction`` and ``seed`` (stratified validation carve-out), ``on_bad_image`` (``skip`` |
    ``fail``). The data dir is ``data_dir``, else ``$FUSIONZOO_DATA``, else the user cache dir.
    """
    common = dict(
        limit=limit,
        per_class_cap=per_class_cap,
        label_source=label_source,
        geos=list(geos) if geos else None,
        val_fraction=val_fraction,
        seed=seed,
        on_bad_image=on_bad_image,
    )
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    _check_options(name, loader_options)
    if name == "synth":
        from fusionzoo.data.synth import SynthConfig, load_synth

        synth_fields = {f for f in SynthConfig.__dataclass_fields__ if f != "seed"}
        options = {k: loader_options.pop(k) for k in list(loader_options) if k in synth_fields}
        if "synth_seed" in loader_options:
            options["seed"] = loader_options.pop("synth_seed")
        out = loader_options.pop("out", None)
        return load_synth(
            SynthConfig.from_options(**options), data_dir=data_dir, out=out, **common, **loader_options
        )
    if name == "glami1m":
        from fusionzoo.data.glami import load_glami

        return load_glami(loader_options.pop("root", None), data_dir=data_dir, **common, **loader_options)
    from fusionzoo.data.csv import load_csv

    return load_csv(data_dir=data_dir, **common, **loader_options)


def loader_option_names(name: str) -> list[str]:
    """The extra keyword options ``load_dataset(name, ...)`` accepts for one dataset."""
    import inspect

    common = set(inspect.signature(load_dataset).parameters) | {"name", "data_dir"}
    if name == "synth":
        from fusionzoo.data.glami import load_glami
        from fusionzoo.data.synth import SynthConfig

        names = {f for f in SynthConfig.__dataclass_fields__ if f != "seed"} | {"synth_seed", "out"}
        names |= set(inspect.signature(load_glami).parameters) - {"root", "name"}
    elif name == "glami1m":
        from fusionzoo.data.glami import load_glami

        names = set(inspect.signature(load_glami).parameters) - {"name"}
    else:
        from fusionzoo.data.csv import load_csv

        names = set(inspect.signature(load_csv).parameters)
    return sorted(names - common)


def _check_options(name: str, options: dict[str, Any]) -> None:
    valid = loader_option_names(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        kind = "synth option" if name == "synth" else f"{name} option"
        raise DataError(
            f"unknown {kind}(s) {', '.join(unknown)} for dataset {name!r}; valid: {', '.join(valid)}"
        )
