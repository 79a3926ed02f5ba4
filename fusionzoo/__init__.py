"""fusionzoo: benchmark interchangeable multimodal (image + text) fusion modules and heads."""

from fusionzoo.interface import Fusion, FusionOutput, Head, HeadOutput
from fusionzoo.registry import (
    create_fusion,
    create_head,
    get_fusion_class,
    get_head_class,
    list_fusions,
    list_heads,
    load_plugin,
    parse_spec,
    register_fusion,
    register_head,
)

__version__ = "0.1.0"

__all__ = [
    "Fusion",
    "FusionOutput",
    "Head",
    "HeadOutput",
    "__version__",
    "create_fusion",
    "create_head",
    "get_fusion_class",
    "get_head_class",
    "list_fusions",
    "list_heads",
    "load_plugin",
    "parse_spec",
    "register_fusion",
    "register_head",
]
