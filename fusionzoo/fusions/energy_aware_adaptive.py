"""Energy-aware adaptive fusion: a router picks vision-only, text-only or both, paying an energy cost."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fusionzoo.fusions._vector import VectorFusion
from fusionzoo.layers.mlp import MLP
from fusionzoo.registry import register_fusion

PATHS = ("image", "text", "both")
_BLOCKED = -1e9  # logit of a path whose modality is missing (probability exactly 0 after softmax)


@register_fusion
class EnergyAwareAdaptiveFusion(VectorFusion):
    """A 3-way router over the paths {image only, text only, both}, each with an energy cost.

    paths:   y_image = W_v v + b_v,   y_text = W_t t + b_t,   y_both = MLP([v; t])
    router:  ℓ = MLP_r([v; t]) ∈ R^3 (a path whose modality is missing gets ℓ_k = −10⁹),  p = softmax(ℓ)
    train:   w = GumbelSoftmax(ℓ, τ, hard=True)      (one-hot forward, soft gradient: straight-through)
    eval:    w = onehot(argmax_k ℓ_k)                (deterministic; only the chosen path is computed)
    z = Σ_k w_k y_k
    aux "energy" = 1/B Σ_b Σ_k p_bk c_k   with costs c = (cost_image, cost_text, cost_both)

    Costs are in units of the "both" path (defaults 0.5, 0.5, 1): set them from measured per-encoder
    energy or latency when that matters.

    Energy weight: the trainer adds ``λ·energy`` with the declared default λ = 0.003
    (:attr:`aux_loss_weights`; ``--loss-weights energy=…`` overrides it). At λ = 1 the energy term
    dominates CE and the router collapses onto the single-modality paths. Measured on a cross-modal
    task where every sample needs both modalities (``synthetic_features(512, 128, 256,
    complementary=True)``, D = 32, ``mlp`` head, 15 epochs, 6 seeds, ``benchmarks/perf/energy_sweep.py``;
    test accuracy / mean test energy):
    noise 1.5: λ = 0 0.972 / 0.789, 0.003 0.967 / 0.787, 0.01 0.951 / 0.777, 0.03 0.931 / 0.743,
    0.1 0.882 / 0.671; noise 2.5: λ = 0 0.909 / 0.780, 0.003 0.910 / 0.774, 0.01 0.902 / 0.763,
    0.1 0.813 / 0.692, 1 0.602 / 0.510. 0.003 is the largest λ of the sweep that cost under one
    accuracy point on both; on redundant data (``complementary=False``, noise 2.5, 3 seeds) no λ up
    to 1 cost accuracy (0.954 at λ = 0 and λ = 1) and λ = 1 reached the minimum energy 0.50, so raise
    λ where one modality often suffices. The evaluation reports the mean energy over the split as the
    ``aux_energy`` metric (results columns ``val_aux_energy`` / ``test_aux_energy``).

    The expected energy is returned in train and eval (the published module sampled in eval and never
    returned it). Extras: ``router_probs`` (B, 3) and ``path`` (B,) indices in
    the order of ``PATHS``. A sample with neither modality may take any path (all inputs are zeros).
    """

    name = "energy_aware_adaptive"
    description = "router over image-only / text-only / both paths, Gumbel-ST in training, energy aux loss"
    aux_loss_weights = {"energy": 0.003}  # default λ, chosen by the sweep in the docstring

    def __init__(
        self,
        dim: int,
        *,
        cost_image: float = 0.5,
        cost_text: float = 0.5,
        cost_both: float = 1.0,
        temperature: float = 1.0,
        hidden_mult: float = 1.0,
        dropout: float = 0.1,
        pool: str = "mean",
    ) -> None:
        super().__init__(dim, pool=pool)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if min(cost_image, cost_text, cost_both) < 0:
            raise ValueError("energy costs (cost_image, cost_text, cost_both) must be >= 0")
        self.temperature = temperature
        self.register_buffer("costs", torch.tensor([cost_image, cost_text, cost_both]))
        hidden = max(1, int(dim * hidden_mult))
        self.router = MLP(2 * dim, hidden, len(PATHS), dropout=dropout)
        self.image_path = nn.Linear(dim, dim)
        self.text_path = nn.Linear(dim, dim)
        self.both_path = MLP(2 * dim, hidden, dim, dropout=dropout)

    def _run_path(self, k: int, v: Tensor, t: Tensor) -> Tensor:
        if k == 0:
            return self.image_path(v)
        if k == 1:
            return self.text_path(t)
        return self.both_path(torch.cat([v, t], dim=-1))

    def fuse(
        self, v: Tensor, t: Tensor, has_image: Tensor, has_text: Tensor
    ) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        allowed = torch.stack([has_image, has_text, has_image & has_text], dim=1)
        allowed = allowed | ~allowed.any(dim=1, keepdim=True)
        logits = self.router(torch.cat([v, t], dim=-1)).masked_fill(~allowed, _BLOCKED)
        probs = logits.softmax(dim=-1)
        energy = (probs * self.costs.to(probs.dtype)).sum(-1).mean()
        if self.training:
            weights = F.gumbel_softmax(logits, tau=self.temperature, hard=True)
            outputs = torch.stack([self._run_path(k, v, t) for k in range(len(PATHS))], dim=1)
            fused = (weights.unsqueeze(-1) * outputs).sum(1)
            path = weights.argmax(dim=-1)
        else:
            path = logits.argmax(dim=-1)
            fused = v.new_zeros(v.shape)
            for k in range(len(PATHS)):
                chosen = path == k
                if chosen.any():
                    fused[chosen] = self._run_path(k, v[chosen], t[chosen])
        return fused, {"energy": energy}, {"router_probs": probs.detach(), "path": path}

    search_space_prefix = "energy_aware_"  # Optuna names energy_aware_temperature, ...

    @classmethod
    def search_space_distributions(cls) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        return {
            "temperature": FloatDistribution(0.3, 2.0, log=True),
            "hidden_mult": CategoricalDistribution([0.5, 1.0, 2.0]),
            "dropout": FloatDistribution(0.0, 0.3),
        }
