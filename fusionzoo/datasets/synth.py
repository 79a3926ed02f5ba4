"""``synth``: the embedded GLAMI-format dataset, generated on first use (no download)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fusionzoo.data.base import DatasetSplits
from fusionzoo.datasets.base import DatasetBackend, register_dataset


@register_dataset
class SynthDataset(DatasetBackend):
    """The embedded GLAMI-1M-format dataset: images carry colour and shape, texts gender, material and
    brand, so each modality holds half of the label (fusionzoo/data/synth_files.py has the generator).

    Options: the fields of :class:`fusionzoo.data.synth_files.SynthConfig` (``size``, ``image_size``,
    ``zipf``, ...; ``synth_seed`` for its ``seed``), ``out`` (generate into this folder), and the
    GLAMI loader's ``text_fields``/``text_separator``/``check_images``.
    """

    name = "synth"
    description = "embedded GLAMI-format synthetic dataset (generated once, no download)"
    demo = True
    default_preset = "quick"

    def load(
        self,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        out: str | os.PathLike[str] | None = None,
        synth_seed: int | None = None,
        text_fields: tuple[str, ...] = ("name", "description"),
        text_separator: str = "\n",
        check_images: bool = True,
        **options: Any,
    ) -> DatasetSplits:
        from fusionzoo.data.synth_files import load_synth

        config, common = self._split_options(options, synth_seed)
        return load_synth(
            config,
            data_dir=data_dir,
            out=out,
            text_fields=text_fields,
            text_separator=text_separator,
            check_images=check_images,
            **common,
        )

    def example(self, folder: Path) -> dict[str, Any]:
        """240 listings of 16 px images generated into ``folder/synth``."""
        return {"out": str(Path(folder) / "synth"), "size": 240, "image_size": 16, "data_dir": str(folder)}

    @classmethod
    def option_names(cls) -> list[str]:
        from fusionzoo.data.synth_files import SynthConfig

        names = {f for f in SynthConfig.__dataclass_fields__ if f != "seed"}
        return sorted(set(super().option_names()) | names)

    @classmethod
    def option_types(cls) -> dict[str, Any]:
        import typing

        from fusionzoo.data.synth_files import SynthConfig

        hints = typing.get_type_hints(SynthConfig)
        return {**super().option_types(), **{n: t for n, t in hints.items() if n != "seed"}}

    @staticmethod
    def _split_options(options: dict[str, Any], synth_seed: int | None) -> tuple[Any, dict[str, Any]]:
        from fusionzoo.data.synth_files import SynthConfig

        fields = {f for f in SynthConfig.__dataclass_fields__ if f != "seed"}
        generator = {k: options.pop(k) for k in list(options) if k in fields}
        if synth_seed is not None:
            generator["seed"] = synth_seed
        return SynthConfig.from_options(**generator), options

    def default_encoders(self, splits: DatasetSplits, cache_dir: Any, **encoder_options: Any) -> Any:
        """A seeded random-init ViT-tiny at 64 px and a 2-layer BERT with a WordPiece vocabulary counted
        on the train texts, built locally (fusionzoo/encoders/defaults.py); no download."""
        from fusionzoo.encoders.defaults import local_synth_encoders

        return local_synth_encoders(splits, cache_dir, **encoder_options)

    def default_encoder_specs(self) -> None:
        return None

    def status(self, **options: Any) -> str:
        from fusionzoo.data.synth_files import default_out, is_current

        data_dir = options.pop("data_dir", None)
        out = options.pop("out", None)
        config, _ = self._split_options(dict(options), options.get("synth_seed"))
        target = Path(out).expanduser().resolve() if out else default_out(config, data_dir)
        if not is_current(target, config):
            return f"not generated yet (will be generated into {target})"
        return super().status(data_dir=data_dir, out=out, **options)
