"""``label_noise``: train on labels of which a fraction ρ is flipped; test on clean labels."""

from __future__ import annotations

from typing import Any

import torch

from fusionzoo.protocols.base import Protocol, check_rates, register_protocol

MODES = ("uniform", "class_conditional")


@register_protocol
class LabelNoise(Protocol):
    """A train-time protocol: each training label is flipped with probability ρ (the level).

    u_i ~ U(0, 1) per sample; flipped ⇔ u_i < ρ. The new label of a flipped sample of class y is
    ``uniform``: drawn uniformly from the C − 1 other classes (symmetric noise, T = (1−ρ)I + ρ/(C−1)(J−I));
    ``class_conditional``: (y + 1) mod C, the pair-flip noise of Han et al. (NeurIPS 2018), where each
    class is confused with one fixed other class (T = (1−ρ)I + ρP, P a cyclic permutation).
    The noisy labels are drawn once per run from ``seed`` (the same flipped samples every epoch and for
    every fusion and run seed); with ``val=True`` (default) the validation split is flipped the same way,
    as when it is carved from the noisy training data. The test split is never touched.
    GLAMI-1M's own noisy labels: ``--data-option label_source=human`` trains on human labels only.
    """

    name = "label_noise"
    description = "flip a fraction ρ of the training labels (uniform or class-conditional); test clean"
    stage = "train"
    stages = ("train",)
    target = "labels"
    test_config = {"rates": [0.0, 0.5, 1.0]}

    def __init__(
        self,
        *,
        rates: tuple[float, ...] = (0.0, 0.1, 0.2, 0.4),
        mode: str = "uniform",
        val: bool = True,
        seed: int = 0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.rates = check_rates(self.name, "rates", rates)
        self.mode, self.val, self.seed = mode, bool(val), int(seed)

    def apply(self, batch: dict[str, Any], level: float, generator: torch.Generator) -> dict[str, Any]:
        """Flip ``batch["label"]``; ``batch["num_classes"]`` gives C (else max label + 1)."""
        rho = self.check_level(level)
        labels = torch.as_tensor(batch["label"]).long()
        n = labels.shape[0]
        num_classes = int(batch.get("num_classes") or (int(labels.max()) + 1 if n else 1))
        u = torch.rand(n, generator=generator)
        offsets = torch.randint(1, max(2, num_classes), (n,), generator=generator)
        if rho == 0.0 or num_classes < 2:
            return batch
        flipped = u < rho
        step = offsets if self.mode == "uniform" else torch.ones_like(offsets)
        noisy = torch.where(flipped, (labels + step) % num_classes, labels)
        return {**batch, "label": noisy}
