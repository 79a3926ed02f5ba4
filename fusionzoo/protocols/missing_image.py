"""``missing_image``: per-sample missing image at rate η (the missing-modality protocol)."""

from __future__ import annotations

from fusionzoo.protocols._tokens import MissingModality
from fusionzoo.protocols.base import register_protocol


@register_protocol
class MissingImage(MissingModality):
    """Each sample loses its image with probability η (levels: ``rates``, default 0, 0.1, …, 1).

    u_b ~ U(0, 1);  image missing for sample b  ⇔  u_b < η  (nested across η, seeded by ``seed``).
    Imputation (``imputation``): ``mask`` — image tokens zeroed and masked out (the ``(B,·,D)`` contract
    keeps the output finite); ``zeros`` — zero tokens left unmasked; ``mean`` — the training split's
    mean image token. Usable at test time and as a train-time protocol (``missing_image@0.3``).
    """

    name = "missing_image"
    description = "per-sample missing image at rate η (mask | zeros | mean imputation)"
    modality = "image"
