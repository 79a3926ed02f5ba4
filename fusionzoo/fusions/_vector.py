"""Shared base of vector fusions: pool each modality to one vector, fuse, return ``(B, 1, D)``."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from fusionzoo.interface import Fusion, FusionOutput
from fusionzoo.layers.pooling import POOL_MODES, any_real, pool_tokens


class VectorFusion(Fusion):
    """Pools image and text tokens (``pool=mean|max|cls``, masked) and calls :meth:`fuse` on the vectors.

    Subclasses implement ``fuse(v, t, has_image, has_text) -> Tensor (B, D)`` or
    ``-> (Tensor, aux_losses, extras)``. ``has_image``/``has_text`` are ``(B,)`` bool: False where the
    whole modality is masked (its pooled vector is then zeros). The pooled vectors are the per-modality
    branches (``modality_branches``): they are returned as ``FusionOutput.modality_features``.
    """

    kind = "vector"
    modality_branches = True

    def __init__(self, dim: int, pool: str = "mean") -> None:
        super().__init__(dim)
        if pool not in POOL_MODES:
            raise ValueError(f"pool must be one of {', '.join(POOL_MODES)}, got '{pool}'")
        self.pool = pool

    def fuse(self, v: Tensor, t: Tensor, has_image: Tensor, has_text: Tensor) -> Any:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} must implement fuse()")

    def forward(
        self, image: Tensor, text: Tensor, image_mask: Tensor | None = None, text_mask: Tensor | None = None
    ) -> FusionOutput:
        v = pool_tokens(image, image_mask, self.pool)
        t = pool_tokens(text, text_mask, self.pool)
        has_image = any_real(image_mask, image.shape[0], image.device)
        has_text = any_real(text_mask, text.shape[0], text.device)
        result = self.fuse(v, t, has_image, has_text)
        fused, aux, extras = result if isinstance(result, tuple) else (result, {}, {})
        return FusionOutput(
            tokens=fused.unsqueeze(1),
            mask=None,
            aux_losses=aux,
            extras=extras,
            modality_features={"image": v, "text": t},
        )
