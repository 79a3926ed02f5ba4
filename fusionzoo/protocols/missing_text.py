"""``missing_text``: per-sample missing text at rate η (the missing-modality protocol)."""

from __future__ import annotations

from fusionzoo.protocols._tokens import MissingModality
from fusionzoo.protocols.base import register_protocol


@register_protocol
class MissingText(MissingModality):
    """Each sample loses its text with probability η (levels: ``rates``, default 0, 0.1, …, 1).

    u_b ~ U(0, 1);  text missing for sample b  ⇔  u_b < η  (nested across η, seeded by ``seed``).
    Imputation (``imputation``): ``mask`` — text tokens zeroed and masked out; ``zeros`` — zero tokens
    left unmasked (at the sample's own length); ``mean`` — the training split's mean text token.
    """

    name = "missing_text"
    description = "per-sample missing text at rate η (mask | zeros | mean imputation)"
    modality = "text"
