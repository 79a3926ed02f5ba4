"""Image-only baseline (FLUID Table 2): the pooled image vector, projected; text is ignored."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from torch import Tensor

from fusionzoo.fusions._vector import VectorFusion
from fusionzoo.layers.mlp import MLP
from fusionzoo.registry import register_fusion


@register_fusion
class ImageOnly(VectorFusion):
    """Unimodal baseline that reads only the image.

    z = P(v),   P = W v + b (``hidden_mult=0``) or MLP(v) with one hidden layer of hidden_mult·D

    The text never reaches the output and the module has no text parameters (every parameter gets a
    gradient). ``modalities = ("image",)``: the model builds no text projection either (so the
    parameter count is image projection + this module + head) and passes the text as a missing
    modality. A sample without an image pools to zeros, so its output is P(0) (finite). ``TextOnly``
    (``text_only``) is the same module with ``modality = "text"``.
    """

    name = "image_only"
    description = "unimodal baseline: projection of the pooled image vector (text ignored)"
    modality: ClassVar[Literal["image", "text"]] = "image"
    modalities: ClassVar[tuple[str, ...]] = ("image",)

    def __init__(
        self, dim: int, *, hidden_mult: float = 0.0, dropout: float = 0.0, pool: str = "mean"
    ) -> None:
        super().__init__(dim, pool=pool)
        if hidden_mult < 0:
            raise ValueError(f"hidden_mult must be >= 0 (0 = a single linear projection), got {hidden_mult}")
        hidden = [max(1, int(dim * hidden_mult))] if hidden_mult > 0 else []
        self.proj = MLP(dim, hidden, dim, dropout=dropout)

    def fuse(self, v: Tensor, t: Tensor, has_image: Tensor, has_text: Tensor) -> Tensor:
        return self.proj(v if self.modality == "image" else t)

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        return {
            "hidden_mult": CategoricalDistribution([0.0, 1.0, 2.0]),
            "dropout": FloatDistribution(0.0, 0.5),
        }
