"""The dataset backend interface (in the manner of xarray's ``BackendEntrypoint``).

A backend is a class registered with ``@register_dataset``; ``fusionzoo list datasets`` shows its
options, default encoders, demo flag and ``description`` (``url`` points to the dataset's home). What
it owns:

- :meth:`DatasetBackend.load` → :class:`~fusionzoo.data.base.DatasetSplits` (train/val/test frames with
  :data:`~fusionzoo.data.base.COLUMNS`, classes, fingerprint). The common options (``limit``,
  ``per_class_cap``, ``label_source``, ``geos``, ``val_fraction``, ``seed``, ``on_bad_image``) are the
  keyword arguments of :data:`COMMON_OPTIONS`; a backend's own options are the other keyword-only
  parameters of its ``load`` (:meth:`option_names`), and a wrong one is an error listing the valid ones.
- :meth:`default_encoders` → the image and text encoders used when none is named.
- :meth:`status` (a one-line "is it there / what will happen") and :meth:`verify` (a full check).
- :meth:`example`: writes a tiny dataset in the backend's own layout and returns the load options
  that read it; ``fusionzoo.testing.check_dataset`` runs the backend's contract on it.
- ``demo``: ``True`` for a dataset made to show fusion gains (the unimodal baselines join its grid by
  default); real datasets get the linear-probe floor instead.
- ``default_preset``: the packaged preset ``--dataset NAME`` starts from when no ``--config`` is given:
  ``real`` (training defaults chosen by measurement on real frozen features, docs/real-defaults.md)
  unless the backend names another (the embedded demo: ``quick``).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import typing
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ConfigDict, TypeAdapter, ValidationError

from fusionzoo.data.base import DataError, DatasetSplits
from fusionzoo.registry import REGISTRIES, RegistryError

__all__ = ["COMMON_OPTIONS", "DatasetBackend", "load_dataset", "loader_option_names", "register_dataset"]

COMMON_OPTIONS = (
    "data_dir",
    "limit",
    "per_class_cap",
    "label_source",
    "geos",
    "val_fraction",
    "seed",
    "on_bad_image",
)


def register_dataset(obj: Any = None, *, name: str | None = None) -> Any:
    """Register a dataset backend class (bare or ``@register_dataset("name")``)."""
    return REGISTRIES["dataset"].register(obj, name=name)


class DatasetBackend:
    """Base class of dataset backends; subclasses implement :meth:`load` (and usually :meth:`status`)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    url: ClassVar[str] = ""
    demo: ClassVar[bool] = False
    default_preset: ClassVar[str] = "real"

    def load(self, **options: Any) -> DatasetSplits:  # pragma: no cover - interface
        raise NotImplementedError(f"{type(self).__name__} must implement load()")

    def example(self, folder: Path) -> dict[str, Any]:
        """Write a tiny dataset in this backend's layout under ``folder`` and return the options of
        :meth:`load` that read it (a few dozen rows, at least two classes, a train and a test part;
        ``data_dir`` defaults to ``folder``). Contract tests and docs use it; nothing is downloaded."""
        raise NotImplementedError(f"dataset backend '{self.name or type(self).__name__}' has no example()")

    # ------------------------------------------------------------------------------------------ options
    @classmethod
    def option_names(cls) -> list[str]:
        """The backend's own options (keyword parameters of ``load`` beyond :data:`COMMON_OPTIONS`)."""
        params = inspect.signature(cls.load).parameters
        return sorted(
            n
            for n, p in params.items()
            if n != "self" and n not in COMMON_OPTIONS and p.kind is not inspect.Parameter.VAR_KEYWORD
        )

    @classmethod
    def option_types(cls) -> dict[str, Any]:
        """The annotation of each option: the keyword parameters of ``load`` and, for the common
        options, of :func:`~fusionzoo.data.loading.assemble_splits`, where they end up."""
        from fusionzoo.data.loading import assemble_splits

        types: dict[str, Any] = {}
        for func, names in ((assemble_splits, COMMON_OPTIONS), (cls.load, [*cls.option_names(), "data_dir"])):
            with contextlib.suppress(Exception):  # an annotation that does not resolve is not checked
                hints = typing.get_type_hints(func)
                types.update({n: hints[n] for n in names if n in hints})
        return types

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Raise :class:`DataError` naming unknown options and the valid ones, or an option whose value
        does not fit its type; returns the options with values converted where their type asks
        (``size="4000"`` → 4000, a list for a tuple), others as given."""
        valid = self.option_names()
        unknown = sorted(set(options) - set(valid) - set(COMMON_OPTIONS))
        if unknown:
            raise DataError(
                f"unknown {self.name} option(s) {', '.join(unknown)} for dataset '{self.name}'; valid: "
                f"{', '.join(valid) or '(none)'} (and the common options {', '.join(COMMON_OPTIONS[1:])})"
            )
        types = self.option_types()
        return {k: _typed(self.name, k, v, types.get(k)) for k, v in options.items()}

    # ----------------------------------------------------------------------------------------- encoders
    def default_encoders(
        self, splits: DatasetSplits, cache_dir: str | os.PathLike[str] | None, **encoder_options: Any
    ) -> tuple[Any, Any]:
        """The encoders used when none is named: the FLUID paper's ViT-B/16 + multilingual BERT."""
        from fusionzoo.encoders.defaults import paper_encoders

        return paper_encoders(**encoder_options)

    def default_encoder_specs(self) -> tuple[str, str] | None:
        """Spec strings of :meth:`default_encoders`, or ``None`` when they are built locally."""
        from fusionzoo.encoders.defaults import PAPER_IMAGE_ENCODER, PAPER_TEXT_ENCODER

        return PAPER_IMAGE_ENCODER, PAPER_TEXT_ENCODER

    # ------------------------------------------------------------------------------------------- status
    def status(self, **options: Any) -> str:
        """One line: whether the data is there, or what a run will do first (nothing is built)."""
        try:
            splits = self.load(**options)
        except DataError as exc:
            return f"unavailable: {exc}".splitlines()[0]
        return (
            f"ready ({len(splits.train):,} train / {len(splits.val):,} val / {len(splits.test):,} test rows)"
        )

    def verify(self, *, deep: bool = False, **options: Any) -> dict[str, Any]:
        """Load the dataset and check every image file (``deep``: decode them); a report dict.

        Rows whose image is missing are kept for the check (``check_images=False`` where the backend
        has that option), so a missing file is reported rather than silently dropped."""
        from fusionzoo.data.images import check_image_files

        keep = {"check_images": False} if "check_images" in self.option_names() else {}
        splits = self.load(**{**options, "on_bad_image": "skip", **keep})
        import pandas as pd

        frames = [splits.split(s).assign(split=s) for s in ("train", "val", "test")]
        rows = pd.concat(frames, ignore_index=True)
        problems = check_image_files(rows, deep=deep)
        return {
            "dataset_dir": str(splits.root),
            "images_checked": int(rows["image_path"].nunique()),
            "image_problems": problems,
            "ok": not len(problems),
        }


def _typed(dataset: str, name: str, value: Any, annotation: Any) -> Any:
    """``value`` if it is of type ``annotation``, else converted to it (pydantic's lax mode, numbers
    accepted as strings); a :class:`DataError` naming the option when neither works."""
    if annotation is None:
        return value
    try:
        adapter = TypeAdapter(annotation, config=ConfigDict(coerce_numbers_to_str=True))
    except Exception:  # noqa: BLE001 - a type pydantic cannot check (a custom class): not checked
        return value
    try:
        adapter.validate_python(value, strict=True)
        return value
    except ValidationError:
        pass
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        expected = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
        reason = exc.errors()[0]["msg"] if exc.errors() else str(exc)
        raise DataError(
            f"{dataset} option {name}={value!r}: {reason[0].lower() + reason[1:]} (expected {expected})"
        ) from None


def load_dataset(name: str = "synth", **options: Any) -> DatasetSplits:
    """Load a registered dataset by name as train/val/test frames.

    Common options: ``data_dir``, ``limit``/``per_class_cap`` (train subsampling keeping the class
    distribution; val and test are scaled by the same ratio), ``label_source`` (``all`` | ``human``),
    ``geos``, ``val_fraction`` and ``seed`` (stratified validation carve-out), ``on_bad_image``
    (``skip`` | ``fail``); the backend's own options are listed by ``fusionzoo list datasets`` and
    :func:`loader_option_names` (an unknown one is an error naming the valid ones). An option given as
    ``None`` keeps its default. The data dir is ``data_dir``, else ``$FUSIONZOO_DATA``, else the user
    cache dir.
    """
    try:
        backend = REGISTRIES["dataset"].create(name)
    except RegistryError as exc:
        raise DataError(str(exc)) from None
    options = {k: v for k, v in options.items() if v is not None or k == "data_dir"}
    return backend.load(**backend.check_options(options))


def loader_option_names(name: str) -> list[str]:
    """The backend-specific keyword options ``load_dataset(name, ...)`` accepts."""
    return REGISTRIES["dataset"].get(name).obj.option_names()
