"""``FusionModel``: [encoders →] per-modality projections Ei→D, Et→D, a registry fusion and a registry head.

    [finetune: raw batch ─ encoder (image + text backbones) →]
    image (B, Li, Ei) ─ Linear+LN → (B, Li, D) [+ modality emb m_img] [+ position emb] ┐
    text  (B, Lt, Et) ─ Linear+LN → (B, Lt, D) [+ modality emb m_txt] [+ position emb] ┴→ fusion → head → logits

The fusion and head are built from spec strings, so every run of the benchmark differs only in them.
A fusion that returns ``FusionOutput.decisions`` (decision-level fusion, ``late_fusion``) has the head
classify each of its real tokens alone; the per-token logits are combined as the fusion asks
(:mod:`fusionzoo.layers.decisions`).
In finetune mode the encoder is a submodule of the model: each run builds its own fresh copy, and the
best-epoch snapshot, the checkpoint and the evaluation always use the whole model.
A fusion that reads one modality (``Fusion.modalities``, e.g. ``image_only``) gets no projection for
the other one: it is neither built, run nor counted; the fusion receives that modality as missing
(``(B, 1, D)`` zeros, all-``False`` mask).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from fusionzoo import registry
from fusionzoo.interface import MODALITIES, FusionOutput, HeadOutput
from fusionzoo.layers.decisions import combine_decisions, deciding_tokens
from fusionzoo.output_checks import validate_fusion_output, validate_head_output

__all__ = ["FusionModel", "ModelOutput", "count_parameters", "fusion_modalities"]


@dataclass
class ModelOutput:
    """Logits ``(B, C)``, every aux loss (fusion's and head's, by name), diagnostics and the fusion's
    per-modality features (``FusionOutput.modality_features``: ``{}`` for a fusion without branches)."""

    logits: Tensor
    aux_losses: dict[str, Tensor] = field(default_factory=dict)
    extras: dict[str, Tensor] = field(default_factory=dict)
    modality_features: dict[str, Tensor] = field(default_factory=dict)


class ModalityProjection(nn.Module):
    """``Linear(E, D) → LayerNorm(D)`` plus optional learnable modality and position embeddings."""

    def __init__(
        self, in_dim: int, dim: int, modality_embedding: bool, positions: int, dropout: float
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.modality = nn.Parameter(torch.zeros(dim)) if modality_embedding else None
        self.position = nn.Parameter(torch.randn(positions, dim) * 0.02) if positions > 0 else None
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def no_weight_decay(self) -> set[str]:
        """Modality and position embeddings: no weight decay (timm convention)."""
        return {"modality", "position"}

    def forward(self, tokens: Tensor) -> Tensor:
        out = self.norm(self.linear(tokens))
        if self.modality is not None:
            out = out + self.modality
        if self.position is not None:
            length = out.shape[1]
            if length > self.position.shape[0]:
                raise ValueError(
                    f"sequence of {length} tokens is longer than the {self.position.shape[0]} position "
                    "embeddings; raise RunConfig.max_positions or disable position_embeddings"
                )
            out = out + self.position[:length]
        return self.dropout(out)


class FusionModel(nn.Module):
    """Projections + fusion (registry) + head (registry).

    ``forward(image, text, image_mask=None, text_mask=None, check=False) -> ModelOutput``. With
    ``check=True`` the fusion's and the head's outputs are validated against the ``(B,·,D)`` contract
    and a violation raises :class:`fusionzoo.output_checks.ContractError` naming the plugin and the rule.
    """

    def __init__(
        self,
        fusion: str,
        head: str,
        *,
        image_dim: int,
        text_dim: int,
        dim: int,
        num_classes: int,
        num_image_tokens: int = 0,
        modality_embeddings: bool = True,
        position_embeddings: bool = False,
        max_positions: int = 512,
        dropout: float = 0.0,
        encoder: nn.Module | None = None,
        image_prefix_tokens: int = 0,
        text_prefix_tokens: int = 0,
    ) -> None:
        super().__init__()
        self.dim, self.num_classes = dim, num_classes
        self.modalities = fusion_modalities(fusion)
        self.image_proj = (
            ModalityProjection(
                image_dim, dim, modality_embeddings, num_image_tokens if position_embeddings else 0, dropout
            )
            if "image" in self.modalities
            else None
        )
        self.text_proj = (
            ModalityProjection(
                text_dim, dim, modality_embeddings, max_positions if position_embeddings else 0, dropout
            )
            if "text" in self.modalities
            else None
        )
        if modality_embeddings:  # distinct initial modality vectors so they are told apart from step 0
            with torch.no_grad():
                for projection in (self.image_proj, self.text_proj):
                    if projection is not None:
                        projection.modality.normal_(0.0, 0.02)
        self.fusion = registry.create_fusion(fusion, dim)
        configure = getattr(self.fusion, "configure_inputs", None)
        if configure is not None:  # the data's [CLS] facts (see Fusion.configure_inputs)
            configure(image_prefix_tokens=image_prefix_tokens, text_prefix_tokens=text_prefix_tokens)
        self.prefix_tokens = {"image": image_prefix_tokens, "text": text_prefix_tokens}
        self.head = registry.create_head(head, dim, num_classes)
        self.fusion_name = getattr(self.fusion, "spec", fusion)
        self.head_name = getattr(self.head, "spec", head)
        self.encoder = encoder  # registered last: the fusion/head initialisation is unchanged by it

    @classmethod
    def from_config(
        cls,
        config: Any,
        *,
        image_dim: int,
        text_dim: int,
        num_classes: int,
        num_image_tokens: int,
        encoder: nn.Module | None = None,
        image_prefix_tokens: int = 0,
        text_prefix_tokens: int = 0,
    ) -> FusionModel:
        """Build from a :class:`fusionzoo.train.config.RunConfig`."""
        return cls(
            config.fusion,
            config.resolved_head(),
            image_dim=image_dim,
            text_dim=text_dim,
            dim=config.dim,
            num_classes=num_classes,
            num_image_tokens=num_image_tokens,
            modality_embeddings=config.modality_embeddings,
            position_embeddings=config.position_embeddings,
            max_positions=config.max_positions,
            dropout=config.dropout,
            encoder=encoder,
            image_prefix_tokens=image_prefix_tokens,
            text_prefix_tokens=text_prefix_tokens,
        )

    @classmethod
    def for_data(cls, config: Any, data: Any) -> FusionModel:
        """Build from a RunConfig for training data exposing image/text dims, classes and image tokens;
        in finetune mode the model gets a fresh encoder from ``data.make_encoder()``."""
        make_encoder = getattr(data, "make_encoder", None)
        return cls.from_config(
            config,
            image_dim=data.image_dim,
            text_dim=data.text_dim,
            num_classes=data.num_classes,
            num_image_tokens=data.num_image_tokens,
            encoder=make_encoder() if make_encoder is not None else None,
            image_prefix_tokens=int(getattr(data, "image_prefix_tokens", 0)),
            text_prefix_tokens=int(getattr(data, "text_prefix_tokens", 0)),
        )

    def head_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters of everything but the encoder (projections, fusion, head)."""
        skip = {id(p) for p in self.encoder.parameters()} if self.encoder is not None else set()
        return [p for p in self.parameters() if p.requires_grad and id(p) not in skip]

    def forward_batch(self, batch: dict[str, Any], check: bool = False) -> ModelOutput:
        """Run a batch dict: the encoder first when the model has one (finetune), then :meth:`forward`."""
        if self.encoder is not None:
            batch = {**batch, **self.encoder(batch)}
        return self(
            batch["image"], batch["text"], batch.get("image_mask"), batch.get("text_mask"), check=check
        )

    def _project(
        self, projection: ModalityProjection | None, tokens: Tensor, mask: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        if projection is not None:
            return projection(tokens), mask
        # a modality the fusion does not read: missing for every sample, nothing computed
        batch = tokens.shape[0]
        missing = torch.zeros(batch, 1, dtype=torch.bool, device=tokens.device)
        return tokens.new_zeros(batch, 1, self.dim), missing

    def forward(
        self,
        image: Tensor,
        text: Tensor,
        image_mask: Tensor | None = None,
        text_mask: Tensor | None = None,
        check: bool = False,
    ) -> ModelOutput:
        image_tokens, image_mask = self._project(self.image_proj, image, image_mask)
        text_tokens, text_mask = self._project(self.text_proj, text, text_mask)
        fused = self.fusion(image_tokens, text_tokens, image_mask, text_mask)
        if check:
            validate_fusion_output(fused, image.shape[0], self.dim, f"fusion {self.fusion_name}")
        out = self._classify(fused, check)
        aux: dict[str, Tensor] = dict(fused.aux_losses)
        for name, value in out.aux_losses.items():  # same name from fusion and head: both count
            aux[name] = aux[name] + value if name in aux else value
        extras = {f"fusion.{k}": v for k, v in fused.extras.items()}
        extras.update({f"head.{k}": v for k, v in out.extras.items()})
        return ModelOutput(
            logits=out.logits, aux_losses=aux, extras=extras, modality_features=fused.modality_features
        )

    def _classify(self, fused: FusionOutput, check: bool) -> HeadOutput:
        """The head on the fused tokens; with ``fused.decisions``, on each deciding token alone, the
        per-token logits combined by :func:`~fusionzoo.layers.decisions.combine_decisions`."""
        name = f"head {self.head_name}"
        if fused.decisions is None:
            out = self.head(fused.tokens, fused.mask)
            if check:
                validate_head_output(out, fused.tokens.shape[0], self.num_classes, name)
            return out
        batch, count, dim = fused.tokens.shape
        deciding = deciding_tokens(fused.tokens, fused.mask)
        flat = deciding.reshape(-1)
        per_token = self.head(fused.tokens.reshape(batch * count, 1, dim)[flat])
        if check:
            validate_head_output(per_token, int(flat.sum()), self.num_classes, name)
        logits = per_token.logits.new_zeros(batch * count, self.num_classes)
        logits = logits.index_put((flat,), per_token.logits).view(batch, count, self.num_classes)
        combined = combine_decisions(logits, fused.decisions, deciding, fused.decision_weights)
        return HeadOutput(logits=combined, aux_losses=per_token.aux_losses, extras=per_token.extras)


def fusion_modalities(fusion: str) -> tuple[str, ...]:
    """The modalities fusion spec ``fusion`` reads (its class's ``modalities``; both by default)."""
    name, _ = registry.parse_spec(fusion)
    modalities = tuple(getattr(registry.get_fusion_class(name), "modalities", MODALITIES))
    if not modalities or not set(modalities) <= set(MODALITIES):
        raise ValueError(
            f"fusion '{name}' declares modalities {modalities!r}; expected a non-empty subset of {MODALITIES}"
        )
    return modalities


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
