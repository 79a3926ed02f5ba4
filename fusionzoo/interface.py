"""The ``(B, ·, D)`` contract shared by every fusion module and classification head.

A fusion maps image tokens ``(B, Ni, D)`` and text tokens ``(B, Nt, D)`` (with optional boolean masks,
``True`` = a real token, ``None`` = all real) to fused tokens ``(B, Nf, D)``. A head maps fused tokens to
logits ``(B, C)``. Both return auxiliary losses (named scalars the trainer adds to the objective) and
extras (diagnostics that never enter the loss).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

__all__ = ["MODALITIES", "Fusion", "FusionOutput", "Head", "HeadOutput", "Tunable"]

MODALITIES = ("image", "text")


@dataclass
class FusionOutput:
    """What a fusion returns.

    tokens: ``(B, Nf, D)`` fused tokens, ``Nf >= 1``, finite.
    mask: ``(B, Nf)`` bool, ``True`` = real token; ``None`` = all real.
    aux_losses: named scalar losses the trainer adds (e.g. ``"contrastive"``, ``"energy"``).
    extras: diagnostics (gate values, routing probabilities); never part of the loss.
    decisions: ``None`` (default): the head reads all tokens at once, ``head(tokens, mask)``.
        ``"logits"`` or ``"probs"``: decision-level fusion — the head classifies each real token on its
        own (as a one-token sequence) and the model combines the per-token decisions ``ℓ_n`` with
        weights ``w`` renormalised over the real tokens: ``Σ_n w_n ℓ_n`` (``"logits"``) or
        ``log Σ_n w_n softmax(ℓ_n)`` (``"probs"``: the returned logits are log-probabilities, their
        softmax is the mixture). See :func:`fusionzoo.layers.decisions.combine_decisions`.
    decision_weights: ``(B, Nf)`` non-negative weights of the per-token decisions (``decisions`` only);
        ``None`` = equal weights.
    modality_features: ``{"image": (B, D), "text": (B, D)}`` from a fusion with per-modality branches
        (``Fusion.modality_branches``): each modality's representation computed from that modality
        alone, before anything mixes them (read by imbalance-aware training, e.g. G-Blend's
        per-modality heads); ``{}`` otherwise.
    """

    tokens: Tensor
    mask: Tensor | None = None
    aux_losses: dict[str, Tensor] = field(default_factory=dict)
    extras: dict[str, Tensor] = field(default_factory=dict)
    decisions: Literal["logits", "probs"] | None = None
    decision_weights: Tensor | None = None
    modality_features: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class HeadOutput:
    """What a head returns: ``logits (B, C)`` plus named aux losses and diagnostics."""

    logits: Tensor
    aux_losses: dict[str, Tensor] = field(default_factory=dict)
    extras: dict[str, Tensor] = field(default_factory=dict)


class Tunable:
    """The search-space declaration every fusion and head inherits (read by ``fusionzoo tune``).

    A plugin overrides :meth:`search_space_distributions` with ``{hyperparameter: optuna distribution}``
    (keys are constructor hyperparameters). Each is searched as the Optuna parameter
    ``<search_space_prefix><hyperparameter>``; the prefix defaults to ``"<registered name>_"``.
    ``search_space(trial)`` is the legacy form (suggest on ``trial``, return kwargs): a plugin that
    overrides it instead of declaring still works (see ``fusionzoo.tune.plugin_space``).
    """

    search_space_prefix: ClassVar[str | None] = None

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        """``{hyperparameter: optuna.distributions.BaseDistribution}`` to search; none by default."""
        return {}

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """Legacy API: suggest the declared hyperparameters on an Optuna ``trial``; return the kwargs."""
        from fusionzoo.tune.plugin_space import suggest_declared

        return suggest_declared(cls, trial)


class Fusion(Tunable, nn.Module):
    """Base class of fusion modules. Subclasses implement :meth:`forward`.

    Constructor convention: ``Fusion(dim: int, **hyperparameters)`` with keyword-only hyperparameters
    that have defaults, so a spec string such as ``fluid:gating=false,queries=16`` can build it.

    Class attributes:
        kind: ``"vector"`` (pools each modality, returns ``(B, 1, D)``) or ``"token"``.
        description: one line shown by ``fusionzoo list``.
        default_head: the head the benchmark pairs it with when none is named.
        modalities: the modalities it reads, ``("image", "text")`` by default. A fusion that reads one
            (``image_only``: ``("image",)``) gets no projection for the other: ``FusionModel`` neither
            builds, runs nor counts it, and passes that modality as a missing one — a ``(B, 1, D)``
            zero tensor with an all-``False`` mask — so the ``(B, ·, D)`` contract is the same for
            every fusion.
        modality_branches: ``True`` when the fusion has per-modality branches: each modality is
            encoded on its own into a ``(B, D)`` representation (returned as
            ``FusionOutput.modality_features``) and the modalities meet only after that (concatenation,
            gating, FiLM, decision averaging), so a modality left out (masked) removes exactly its own
            contribution. Imbalance-aware training protocols (``ogm_ge``, ``gblend``) need it and
            refuse other fusions; :meth:`branch_parameters` names the parameters of each branch beyond
            the model's per-modality projection.
    """

    kind: ClassVar[Literal["vector", "token"]] = "vector"
    description: ClassVar[str] = ""
    default_head: ClassVar[str] = "mlp"
    modalities: ClassVar[tuple[str, ...]] = ("image", "text")
    modality_branches: ClassVar[bool] = False

    def __init__(self, dim: int) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"{type(self).__name__}: dim must be a positive int, got {dim!r}")
        self.dim = dim

    def branch_parameters(self, modality: str) -> list[nn.Parameter]:
        """The fusion's own parameters that only ``modality``'s branch uses (default: none)."""
        return []

    def forward(  # pragma: no cover - interface
        self,
        image: Tensor,
        text: Tensor,
        image_mask: Tensor | None = None,
        text_mask: Tensor | None = None,
    ) -> FusionOutput:
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def configure_inputs(self, *, image_prefix_tokens: int = 0, text_prefix_tokens: int = 0) -> None:
        """Facts about the token sequences, given once by the model before training (default: ignored).

        ``*_prefix_tokens``: how many leading tokens of each modality summarise the whole input (a ViT's
        or BERT's [CLS]; 0 for a CNN feature map or pooled patches). A fusion that reads "the [CLS]
        token" should fall back to a pooled token when there is none.
        """


class Head(Tunable, nn.Module):
    """Base class of classification heads: ``Head(dim, num_classes, **hp)``, tokens -> logits."""

    description: ClassVar[str] = ""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"{type(self).__name__}: dim must be a positive int, got {dim!r}")
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"{type(self).__name__}: num_classes must be an int >= 2, got {num_classes!r}")
        self.dim = dim
        self.num_classes = num_classes

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> HeadOutput:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")


def all_real_mask(tokens: Tensor) -> Tensor:
    """A ``(B, N)`` mask of ``True`` for ``tokens (B, N, D)``."""
    return torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
