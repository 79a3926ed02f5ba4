"""Late (decision-level) fusion: each modality is classified on its own, the decisions are combined."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fusionzoo.interface import Fusion, FusionOutput
from fusionzoo.layers.mlp import MLP
from fusionzoo.layers.pooling import POOL_MODES, any_real, pool_tokens
from fusionzoo.registry import register_fusion

COMBINE_MODES = ("logits", "probs", "learned")


@register_fusion
class LateFusion(Fusion):
    """Decision-level fusion: one decision per modality, then their (weighted) mean.

        u_img = P_img(pool(I)),   u_txt = P_txt(pool(T))      per-modality branches (Linear, or an MLP
                                                              with one hidden layer of hidden_mult·D)
        ℓ_m = h(u_m) ∈ R^C                                    the head h classifies each token alone
        combine="logits":   logits = ½ (ℓ_img + ℓ_txt)
        combine="probs":    logits = log ½ (softmax(ℓ_img) + softmax(ℓ_txt))
        combine="learned":  logits = w_img ℓ_img + w_txt ℓ_txt,   w = softmax(α), α ∈ R² learned

    How it fits the ``(B, ·, D)`` contract: the fusion returns the two branch outputs as tokens
    ``(B, 2, D)`` with the mask ``[has_image, has_text]`` and ``FusionOutput.decisions`` ("logits" for
    ``logits``/``learned``, "probs" for ``probs``; ``decision_weights = softmax(α)`` for ``learned``).
    ``FusionModel`` then runs the head on each real token as a one-token sequence and combines the
    per-token logits with the weights renormalised over the real tokens
    (:func:`fusionzoo.layers.decisions.combine_decisions`). Each decision depends on one modality only:
    the modality's own branch followed by the (shared) head, so each modality has its own classifier
    ``h ∘ P_m`` whose last layers are shared. ``probs`` returns log-probabilities as logits (their
    softmax is the mean of the two distributions; cross-entropy on them is the mixture's NLL).

    Missing modality: its token is masked, so it gets weight 0 and the other modality decides alone
    (``logits`` and ``learned``: ``logits = ℓ_txt``; ``probs``: ``log softmax(ℓ_txt)``). A sample with
    neither decides with both tokens (branches of zero vectors), which stays finite. Read by a head
    directly (``head(tokens, mask)``, e.g. outside ``FusionModel``) the output is the two unimodal
    features with their mask. ``extras["decision_weights"]`` holds ``softmax(α)`` (``learned``).
    """

    name = "late_fusion"
    description = (
        "decision-level: per-modality branch → head per modality, logits/probs mean or learned weights"
    )
    kind = "token"
    modality_branches = True  # modality_features: the two branch outputs u_img, u_txt

    def __init__(
        self,
        dim: int,
        *,
        combine: str = "logits",
        hidden_mult: float = 0.0,
        dropout: float = 0.1,
        pool: str = "mean",
    ) -> None:
        super().__init__(dim)
        if combine not in COMBINE_MODES:
            raise ValueError(f"combine must be one of {', '.join(COMBINE_MODES)}, got '{combine}'")
        if pool not in POOL_MODES:
            raise ValueError(f"pool must be one of {', '.join(POOL_MODES)}, got '{pool}'")
        if hidden_mult < 0:
            raise ValueError(f"hidden_mult must be >= 0 (0 = a single linear branch), got {hidden_mult}")
        self.combine, self.pool = combine, pool
        hidden = [max(1, int(dim * hidden_mult))] if hidden_mult > 0 else []
        self.image_branch = MLP(dim, hidden, dim, dropout=dropout)
        self.text_branch = MLP(dim, hidden, dim, dropout=dropout)
        if combine == "learned":
            self.modality_logits = nn.Parameter(torch.zeros(2))

    def forward(
        self, image: Tensor, text: Tensor, image_mask: Tensor | None = None, text_mask: Tensor | None = None
    ) -> FusionOutput:
        batch = image.shape[0]
        branches = {
            "image": self.image_branch(pool_tokens(image, image_mask, self.pool)),
            "text": self.text_branch(pool_tokens(text, text_mask, self.pool)),
        }
        tokens = torch.stack([branches["image"], branches["text"]], dim=1)
        mask = torch.stack(
            [any_real(image_mask, batch, image.device), any_real(text_mask, batch, text.device)], dim=1
        )
        if self.combine == "learned":
            weights = self.modality_logits.softmax(0).expand(batch, 2)
            extras = {"decision_weights": weights.detach()}
            return FusionOutput(
                tokens,
                mask,
                extras=extras,
                decisions="logits",
                decision_weights=weights,
                modality_features=branches,
            )
        decisions = "probs" if self.combine == "probs" else "logits"
        return FusionOutput(tokens, mask, decisions=decisions, modality_features=branches)

    def branch_parameters(self, modality: str) -> list[nn.Parameter]:
        return list((self.image_branch if modality == "image" else self.text_branch).parameters())

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        return {
            "combine": CategoricalDistribution(["logits", "probs", "learned"]),
            "hidden_mult": CategoricalDistribution([0.0, 1.0, 2.0]),
            "dropout": FloatDistribution(0.0, 0.5),
        }
