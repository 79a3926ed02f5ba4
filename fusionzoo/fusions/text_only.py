"""Text-only baseline (FLUID Table 2): the pooled text vector, projected; the image is ignored."""

from __future__ import annotations

from fusionzoo.fusions.image_only import ImageOnly
from fusionzoo.registry import register_fusion


@register_fusion
class TextOnly(ImageOnly):
    """Unimodal baseline that reads only the text.

    z = P(t),   P = W t + b (``hidden_mult=0``) or MLP(t) with one hidden layer of hidden_mult·D

    The image never reaches the output and the module has no image parameters. A sample without text
    pools to zeros, so its output is P(0) (finite). Same module as ``ImageOnly`` with the roles swapped.
    """

    name = "text_only"
    description = "unimodal baseline: projection of the pooled text vector (image ignored)"
    modality = "text"
    modalities = ("text",)
