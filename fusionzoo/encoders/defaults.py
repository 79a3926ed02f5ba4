"""Default encoders per dataset.

GLAMI-1M (and any real dataset): the paper's encoders, ``timm:vit_base_patch16_224`` and
``hf:bert-base-multilingual-cased``, pretrained (from the local Hugging Face cache when offline).

The embedded ``synth`` dataset must work with no download, so its encoders are built locally,
deterministically from a seed, with timm and transformers model classes (see docs/encoders.md for the
measurements behind this choice):

- image: timm ``vit_tiny_patch16_224`` at ``img_size=64`` (17 tokens × 192), randomly initialised
  from the seed and frozen, saved with ``timm.models.save_for_hf``;
- text: a ``BertModel`` from a small ``BertConfig`` (2 layers × 256), randomly initialised from the
  seed and frozen, with a WordPiece tokenizer (``tokenizers`` library) whose vocabulary is counted
  on the train split's texts, saved as a ``PreTrainedTokenizerFast``.

Both go to ``<cache dir>/models/<recipe hash>/`` (never the package directory) and are then loaded
by path like any user model, so their file hashes enter the feature-cache key.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from fusionzoo.data.base import DatasetSplits, fingerprint_of
from fusionzoo.encoders.errors import EncoderError
from fusionzoo.encoders.image import ImageEncoder, create_image_encoder
from fusionzoo.encoders.text import TextEncoder, create_text_encoder
from fusionzoo.io import atomic_directory

PAPER_IMAGE_ENCODER = "timm:vit_base_patch16_224"
PAPER_TEXT_ENCODER = "hf:bert-base-multilingual-cased"

SYNTH_IMAGE_RECIPE: dict[str, Any] = {
    "architecture": "vit_tiny_patch16_224",
    "model_args": {"img_size": 64},
    "seed": 0,
    "version": 1,
}
SYNTH_TEXT_RECIPE: dict[str, Any] = {
    "config": {
        "hidden_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 512,
        "max_position_embeddings": 256,
    },
    "tokenizer": {"kind": "wordpiece-counted", "vocab_size": 8000, "min_frequency": 2, "lowercase": True},
    "max_length": 128,
    "seed": 0,
    "version": 2,
}


def paper_encoders(
    *,
    pretrained: bool | None = None,
    text_max_length: int | None = None,
    image_tokens: str | int = "all",
    text_tokens: str = "all",
) -> tuple[ImageEncoder, TextEncoder]:
    """The FLUID paper's encoders (ViT-B/16, multilingual BERT): the defaults of real datasets."""
    image = create_image_encoder(PAPER_IMAGE_ENCODER, pretrained, image_tokens=image_tokens)
    text = create_text_encoder(
        PAPER_TEXT_ENCODER, pretrained, max_length=text_max_length or 512, text_tokens=text_tokens
    )
    return image, text


def local_synth_encoders(
    splits: DatasetSplits | None,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    pretrained: bool | None = None,
    text_max_length: int | None = None,
    image_tokens: str | int = "all",
    text_tokens: str = "all",
) -> tuple[ImageEncoder, TextEncoder]:
    """The embedded dataset's locally built encoders (see the module docstring); ``pretrained`` is
    ignored: they are seeded random initialisations by design."""
    if splits is None:
        raise EncoderError("the local synth encoders are built from the train texts: pass splits")
    from fusionzoo.encoders.cache_format import default_cache_dir

    models = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    models = models / "models"
    image_dir = build_synth_image_model(models)
    text_dir = build_synth_text_model(models, splits)
    image = create_image_encoder(f"timm:{image_dir}", image_tokens=image_tokens)
    text = create_text_encoder(
        f"hf:{text_dir}",
        max_length=text_max_length or SYNTH_TEXT_RECIPE["max_length"],
        text_tokens=text_tokens,
    )
    return image, text


def default_encoder_specs(dataset_name: str) -> tuple[str, str] | None:
    """The default encoder specs of dataset ``dataset_name``; ``None`` when they are built locally."""
    from fusionzoo.registry import REGISTRIES

    return REGISTRIES["dataset"].create(dataset_name).default_encoder_specs()


def default_encoders(
    dataset_name: str,
    splits: DatasetSplits | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    **encoder_options: Any,
) -> tuple[ImageEncoder, TextEncoder]:
    """``(image_encoder, text_encoder)``: the defaults of dataset ``dataset_name`` (its backend decides)."""
    from fusionzoo.registry import REGISTRIES

    return REGISTRIES["dataset"].create(dataset_name).default_encoders(splits, cache_dir, **encoder_options)


def _build_atomically(target: Path, build: Any) -> Path:
    """Build a model folder in a hidden sibling and rename it into place (:func:`fusionzoo.io.atomic_directory`);
    a folder another process finished first (``READY``) is kept, a half-built one without it replaced."""
    if (target / "READY").exists():
        return target
    if target.exists() and not (target / "READY").exists():
        shutil.rmtree(target, ignore_errors=True)  # left by an interrupted builder of the old layout
    with atomic_directory(target, replace=False) as tmp:
        build(tmp)
        (tmp / "READY").write_text("complete\n")
    return target


def build_synth_image_model(models_dir: Path, recipe: dict[str, Any] | None = None) -> Path:
    """A seeded, randomly initialised timm model saved with ``save_for_hf``; returns its folder."""
    recipe = recipe or SYNTH_IMAGE_RECIPE
    target = Path(models_dir) / f"synth-image-{recipe['architecture']}-{fingerprint_of(recipe)}"

    def build(folder: Path) -> None:
        import timm
        from timm.models import save_for_hf

        generator_state = torch.random.get_rng_state()
        try:
            torch.manual_seed(recipe["seed"])
            model = timm.create_model(
                recipe["architecture"], pretrained=False, num_classes=0, **recipe["model_args"]
            )
        finally:
            torch.random.set_rng_state(generator_state)
        size = recipe["model_args"].get("img_size")
        data_config = {"input_size": [3, size, size], "crop_pct": 1.0} if size else None
        save_for_hf(
            model,
            str(folder),
            model_args=dict(recipe["model_args"]),
            safe_serialization=True,
            data_config=data_config,
        )
        (folder / "recipe.json").write_text(json.dumps(recipe, indent=1, sort_keys=True))

    return _build_atomically(target, build)


def build_synth_text_model(
    models_dir: Path, splits: DatasetSplits, recipe: dict[str, Any] | None = None
) -> Path:
    """A WordPiece tokenizer trained on the train texts + a seeded random ``BertModel``; its folder."""
    recipe = recipe or SYNTH_TEXT_RECIPE
    ident = fingerprint_of({"recipe": recipe, "train": splits.split_fingerprint("train")})
    target = Path(models_dir) / f"synth-text-bert-{ident}"

    def build(folder: Path) -> None:
        from transformers import BertConfig, BertModel

        tokenizer = train_wordpiece_tokenizer(splits.train["text"].fillna("").astype(str).tolist(), recipe)
        tokenizer.save_pretrained(str(folder))
        config = BertConfig(
            vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **recipe["config"]
        )
        generator_state = torch.random.get_rng_state()
        try:
            torch.manual_seed(recipe["seed"])
            model = BertModel(config)  # with its pooler, so AutoModel loads every weight
        finally:
            torch.random.set_rng_state(generator_state)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        try:
            model.save_pretrained(str(folder))
        finally:
            hf_logging.enable_progress_bar()
        (folder / "recipe.json").write_text(json.dumps(recipe, indent=1, sort_keys=True))

    return _build_atomically(target, build)


def train_wordpiece_tokenizer(texts: list[str], recipe: dict[str, Any] | None = None) -> Any:
    """A BERT-style WordPiece ``PreTrainedTokenizerFast`` built offline from ``texts``, deterministically.

    The vocabulary is the special tokens, every character seen (as a word start and as a ``##``
    continuation, so no word is ever ``[UNK]``) and the most frequent whole words (ties broken
    alphabetically), up to ``vocab_size``. (The ``tokenizers`` WordPiece trainer breaks ties in
    hash order, so two runs can give different vocabularies; counting here keeps the model files,
    and so the cache key, identical from run to run.)
    """
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    recipe = recipe or SYNTH_TEXT_RECIPE
    options = recipe["tokenizer"]
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=options["lowercase"]
    )
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in texts:
        words.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({char for word in words for char in word})
    vocab_list = special + chars + [f"##{char}" for char in chars]
    budget = max(0, options["vocab_size"] - len(vocab_list))
    frequent = sorted(
        (item for item in words.items() if item[1] >= options["min_frequency"] and len(item[0]) > 1),
        key=lambda item: (-item[1], item[0]),
    )
    vocab_list += [word for word, _ in frequent[:budget]]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(vocab_list))}
    tokenizer = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=recipe["config"]["max_position_embeddings"],
    )


def build_encoders(
    dataset_name: str,
    splits: DatasetSplits | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    image_spec: str | None = None,
    text_spec: str | None = None,
    pretrained: bool | None = None,
    text_max_length: int | None = None,
    image_tokens: str | int = "all",
    text_tokens: str = "all",
) -> tuple[ImageEncoder, TextEncoder]:
    """The encoders a command asked for: explicit specs where given, the dataset's defaults otherwise.

    This is what ``fusionzoo encode`` (and bench/tune through it) call; ``pretrained=False`` is
    ``--no-pretrained``. A dataset whose defaults are built locally (synth) needs ``splits``.
    """
    image = text = None
    if image_spec is None or text_spec is None:
        specs = default_encoder_specs(dataset_name)
        if specs is None:
            image, text = default_encoders(
                dataset_name,
                splits,
                cache_dir,
                pretrained=pretrained,
                text_max_length=text_max_length,
                image_tokens=image_tokens,
                text_tokens=text_tokens,
            )
        else:
            image_spec, text_spec = image_spec or specs[0], text_spec or specs[1]
    if image_spec is not None:
        image = create_image_encoder(image_spec, pretrained, image_tokens=image_tokens)
    if text_spec is not None:
        text = create_text_encoder(
            text_spec, pretrained, max_length=text_max_length or 512, text_tokens=text_tokens
        )
    return image, text
