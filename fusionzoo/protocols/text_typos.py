"""``text_typos``: character-level typos in the raw texts (nlpaug), re-encoded into the feature cache."""

from __future__ import annotations

import re
from typing import Any

import torch

from fusionzoo.protocols._raw import draw_seeds, missing_extra, seeded_global_rngs
from fusionzoo.protocols.base import DEFAULT_RATES, Protocol, check_rates, register_protocol

KINDS = ("keyboard", "swap", "delete", "insert", "substitute")
_SPACE = re.compile(r"(\s+)")


@register_protocol
class TextTypos(Protocol):
    """A fraction r of each text's words get one character typo (nlpaug's character augmenters).

    ``kind``: ``keyboard`` (a character replaced by a QWERTY neighbour, letters only: nlpaug
    ``KeyboardAug``), ``swap`` (two adjacent characters swapped), ``delete``, ``insert`` or
    ``substitute`` (``RandomCharAug``). Per text of n whitespace-separated words, ⌊r·n⌋ words of at
    least 4 characters are chosen at random and each gets exactly one typo; whitespace is kept as it
    was (nlpaug's own tokenizer would re-space punctuation). Seeded per text from ``seed``. Levels:
    ``rates`` (default 0, 0.1, …, 1; 0 = clean).
    """

    name = "text_typos"
    description = (
        "character typos (keyboard / swap / delete ...) in a fraction r of words, nlpaug, re-encoded"
    )
    needs_raw = True
    target = "raw"
    raw_modalities = ("text",)
    test_config = {"rates": [0.0, 0.5, 1.0]}

    def __init__(
        self, *, kind: str = "keyboard", rates: tuple[float, ...] = DEFAULT_RATES, seed: int = 0
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        try:
            import nlpaug.augmenter.char  # noqa: F401
        except ImportError as exc:
            raise missing_extra("nlpaug", exc) from None
        self.kind, self.rates, self.seed = kind, check_rates(self.name, "rates", rates), int(seed)
        self._augmenters: dict[float, Any] = {}

    @property
    def label(self) -> str:
        return f"{self.registry_name}_{self.kind}"

    def augmenter(self, rate: float) -> Any:
        if rate not in self._augmenters:
            import nlpaug.augmenter.char as nac

            common = dict(
                aug_char_min=1, aug_char_max=1, aug_word_p=rate, aug_word_min=0, aug_word_max=None,
                tokenizer=str.split, reverse_tokenizer=" ".join,
            )  # fmt: skip
            if self.kind == "keyboard":
                aug = nac.KeyboardAug(include_special_char=False, include_numeric=False, **common)
            else:
                aug = nac.RandomCharAug(action=self.kind, **common)
            self._augmenters[rate] = aug
        return self._augmenters[rate]

    def typo(self, text: str, rate: float, seed: int) -> str:
        parts = _SPACE.split(str(text))
        words = [p for p in parts[0::2] if p]
        if not words:
            return text
        with seeded_global_rngs(seed):
            out = self.augmenter(rate).augment(" ".join(words))
        changed = (out[0] if isinstance(out, list) and out else out or " ".join(words)).split()
        if len(changed) != len(words):  # an augmenter changed the word count: keep its output as is
            return " ".join(changed)
        it = iter(changed)
        return "".join(next(it) if i % 2 == 0 and p else p for i, p in enumerate(parts))

    def apply(self, batch: dict[str, Any], level: float, generator: torch.Generator) -> dict[str, Any]:
        rate = self.check_level(level)
        texts = list(batch["text"])
        seeds = draw_seeds(generator, len(texts))
        if rate == 0.0:
            return batch
        return {**batch, "text": [self.typo(t, rate, s) for t, s in zip(texts, seeds, strict=True)]}
