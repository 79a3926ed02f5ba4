"""Text encoders: any transformers model, returning ``last_hidden_state`` ``(B, Lt, Et)`` + its mask.

Spec strings::

    hf:<hub name>           e.g. hf:bert-base-multilingual-cased (from the local HF cache when offline)
    hf:/path/to/folder      a folder written by ``save_pretrained`` (model and tokenizer)

``HF_HUB_OFFLINE=1`` is honoured (nothing is fetched); weights that are not on the machine raise
:class:`~fusionzoo.encoders.errors.WeightsUnavailableError` with the ways to fix it. Texts longer than
``max_length`` tokens are truncated; :meth:`TextEncoder.tokenize` counts them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fusionzoo.encoders.errors import EncoderError, WeightsUnavailableError
from fusionzoo.encoders.image import _is_offline, _looks_like_missing_download, _version, folder_identity

PREFIX = "hf:"
DEFAULT_MAX_LENGTH = 512


@dataclass
class TokenizedBatch:
    input_ids: torch.Tensor  # (B, L) int64, padded to the batch's longest text
    attention_mask: torch.Tensor  # (B, L) int64, 1 = real token
    truncated: int = 0  # how many texts were longer than max_length
    lengths: list[int] = field(default_factory=list)  # token counts after truncation
    too_long: list[int] = field(default_factory=list)  # positions of the truncated texts

    def to(self, device: torch.device | str) -> TokenizedBatch:
        return TokenizedBatch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.truncated,
            self.lengths,
            self.too_long,
        )


def tokenize_texts(tokenizer: Any, max_length: int, texts: list[str]) -> TokenizedBatch:
    """Tokenize ``texts`` (truncated to ``max_length``), padded to the longest; counts truncations.

    One pass at ``max_length + 1`` finds the texts that are too long; only those are tokenized again
    with the real limit, so truncation is counted exactly at little extra cost.
    """
    texts = [str(t) if t is not None else "" for t in texts]
    ids = tokenizer(texts, truncation=True, max_length=max_length + 1, padding=False)["input_ids"]
    too_long = [i for i, row in enumerate(ids) if len(row) > max_length]
    if too_long:
        fixed = tokenizer([texts[i] for i in too_long], truncation=True, max_length=max_length, padding=False)
        for i, row in zip(too_long, fixed["input_ids"], strict=True):
            ids[i] = row
    lengths = [max(1, len(row)) for row in ids]
    width = max(lengths) if lengths else 1
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, tokens in enumerate(ids):
        if tokens:
            input_ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        attention_mask[row, : lengths[row]] = 1
    return TokenizedBatch(input_ids, attention_mask, len(too_long), lengths, too_long)


def parse_text_spec(spec: str) -> tuple[str, bool]:
    """``(name_or_path, is_local)`` from a text encoder spec."""
    if not spec.startswith(PREFIX):
        raise EncoderError(
            f"text encoder '{spec}' must start with '{PREFIX}' (e.g. hf:bert-base-multilingual-cased or hf:/path)"
        )
    body = spec[len(PREFIX) :]
    path = Path(body).expanduser()
    looks_local = body.startswith((os.sep, ".", "~")) or path.is_dir()
    if looks_local and not path.is_dir():
        raise EncoderError(f"text encoder '{spec}': folder {path} does not exist")
    return (str(path) if looks_local else body), looks_local


class TextEncoder(nn.Module):
    """A transformers encoder + its tokenizer; ``forward(input_ids, attention_mask) -> (tokens, mask)``."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        spec: str,
        weights: dict[str, Any],
        max_length: int = DEFAULT_MAX_LENGTH,
        token_selection: str = "all",
    ) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.spec = spec
        self.weights = weights
        model_max = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        if model_max is not None and max_length > model_max:
            max_length = int(model_max)
        self.max_length = int(max_length)
        if token_selection not in ("all", "cls", "mean"):
            raise EncoderError(f"text token selection {token_selection!r} is not one of all, cls, mean")
        self.token_selection = token_selection

    @property
    def out_dim(self) -> int:
        return int(self.model.config.hidden_size)

    def tokenize(self, texts: list[str]) -> TokenizedBatch:
        """Tokenize with truncation to ``max_length``; counts how many texts were truncated."""
        return tokenize_texts(self.tokenizer, self.max_length, texts)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.bool()
        if self.token_selection == "cls":
            return hidden[:, :1], mask[:, :1]
        if self.token_selection == "mean":
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp_min(1.0)
            return pooled, mask[:, :1] | True
        return hidden, mask

    def identity(self) -> dict[str, Any]:
        return {
            "kind": "transformers",
            "spec": self.spec,
            "weights": self.weights,
            "max_length": self.max_length,
            "tokens": self.token_selection,
            "transformers": _version("transformers"),
        }

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Parameters grouped: embeddings, then one group per transformer layer, then the rest."""
        layers = None
        for _, module in self.model.named_modules():
            if isinstance(module, nn.ModuleList) and len(module) > 0:
                layers = module
                break
        if layers is None:
            return [list(self.model.parameters())]
        in_layers = {id(p) for p in layers.parameters()}
        embeddings = [p for n, p in self.model.named_parameters() if id(p) not in in_layers and "embed" in n]
        rest = [p for n, p in self.model.named_parameters() if id(p) not in in_layers and "embed" not in n]
        groups = [embeddings] + [list(layer.parameters()) for layer in layers]
        groups[-1] = groups[-1] + rest
        return groups

    def freeze_layers(self, count: int) -> None:
        """Freeze the embeddings and the first ``count`` layers (``count < 0``: freeze everything)."""
        groups = self.layer_groups()
        frozen = groups if count < 0 else groups[: count + 1] if count > 0 else []
        for group in frozen:
            for param in group:
                param.requires_grad_(False)


def create_text_encoder(
    spec: str,
    pretrained: bool | None = None,
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    text_tokens: str = "all",
    init_seed: int = 0,
) -> TextEncoder:
    """Build a transformers text encoder (eval mode) from ``hf:<name>`` or ``hf:/local/folder``.

    ``pretrained=False`` keeps the architecture (config) and tokenizer but initialises weights randomly,
    from ``init_seed`` (reproducible, so cached features stay valid).
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    name, is_local = parse_text_spec(spec)
    use_pretrained = True if pretrained is None else pretrained
    offline = _is_offline()
    local_only = offline or is_local
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local_only)
        if use_pretrained:
            model = AutoModel.from_pretrained(name, local_files_only=local_only, dtype=torch.float32)
        else:
            config = AutoConfig.from_pretrained(name, local_files_only=local_only)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(init_seed)  # reproducible random init, so the cache key holds
                model = AutoModel.from_config(config)
    except Exception as exc:
        if not is_local and (_looks_like_missing_download(exc) or offline or isinstance(exc, OSError)):
            raise WeightsUnavailableError(
                "text", name, f"{type(exc).__name__}: {exc}", offline=offline
            ) from None
        raise EncoderError(f"text encoder '{spec}' could not be loaded: {type(exc).__name__}: {exc}") from exc
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if getattr(model.config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
        model = model.get_encoder()
    if isinstance(getattr(model, "pooler", None), nn.Module):
        model.pooler = None  # unused: we read last_hidden_state
    if is_local:
        weights: dict[str, Any] = folder_identity(name)
    else:
        weights = {"hub": name, "revision": getattr(model.config, "_commit_hash", None)}
    if not use_pretrained:
        weights = {
            "random_init": True,
            "config_of": weights,
            "init_seed": init_seed,
            "torch": _version("torch"),
        }
    model.eval()
    return TextEncoder(model, tokenizer, spec, weights, max_length, text_tokens).eval()
