"""A plain multi-layer perceptron: Linear → activation → Dropout → … → Linear."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


class MLP(nn.Module):
    """``MLP(in, [h1, h2, ...], out)``: hidden layers with activation and dropout, linear output."""

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int] | int,
        out_dim: int,
        activation: str = "gelu",
        dropout: float = 0.0,
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}'; expected one of {', '.join(_ACTIVATIONS)}")
        sizes = [hidden] if isinstance(hidden, int) else list(hidden)
        layers: list[nn.Module] = []
        prev = in_dim
        for width in sizes:
            layers.append(nn.Linear(prev, width))
            if layer_norm:
                layers.append(nn.LayerNorm(width))
            layers.append(_ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            prev = width
        layers.append(nn.Linear(prev, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
