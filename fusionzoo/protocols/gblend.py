"""``gblend``: Gradient-Blending (Wang, Tran & Feiszli, CVPR 2020), online, per super-epoch."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fusionzoo.protocols._training import TrainingHook, TrainingProtocol
from fusionzoo.protocols.base import check_rates, register_protocol

__all__ = ["BRANCHES", "GBlend", "blend_weights"]

BRANCHES = ("fused", "image", "text")
EPS = 1e-6  # floor of ΔO² (a branch whose overfitting did not move gets a large but finite weight)


def blend_weights(
    before: dict[str, tuple[float, float]],
    after: dict[str, tuple[float, float]],
    previous: dict[str, float],
) -> dict[str, float]:
    """G-Blend's weights from ``{branch: (train loss, val loss)}`` at two checkpoints N and N + n.

        ΔG_k = L^V_k(N) − L^V_k(N+n)                           generalisation gained
        ΔO_k = O_k(N+n) − O_k(N),   O_k = L^V_k − L^T_k         overfitting gained
        w_k = max(ΔG_k, 0) / max(ΔO_k², ε) / Z,   Σ_k w_k = 1

    A branch that did not generalise better gets 0; when no branch did, ``previous`` is kept.
    """
    raw = {}
    for branch, (train_after, val_after) in after.items():
        train_before, val_before = before[branch]
        gain = val_before - val_after
        overfit = (val_after - train_after) - (val_before - train_before)
        raw[branch] = max(gain, 0.0) / max(overfit * overfit, EPS)
    total = sum(raw.values())
    if not total > 0:
        return dict(previous)
    return {branch: value / total for branch, value in raw.items()}


@register_protocol
class GBlend(TrainingProtocol):
    """Gradient-Blending: per-modality heads whose losses are weighted by how well they generalise.

    Each modality's feature h_u (``FusionOutput.modality_features``, (B, D)) gets its own linear head
    c_u(h_u) = W_u h_u + b_u, trained with the model. With L_k the classification loss of branch k ∈
    {fused, image, text} (the run's CE: λ_ce, class weights, label smoothing), the training loss is

        L = L_run + λ · (Σ_k w_k L_k − L_fused),   Σ_k w_k = 1      (λ: the level; λ = 1: pure G-Blend)

    i.e. the fused CE is replaced by (1 − λ)·L_fused + λ·Σ_k w_k L_k; the fusion's and head's aux losses
    are unchanged. The weights start uniform (1/3) and are re-estimated at the end of every super-epoch
    of ``every`` epochs from each branch's train loss L^T (eval mode, on ``train_rows`` fixed training
    rows) and validation loss L^V at its start N and end N + n (the paper's online G-Blend, Alg. 2):

        w_k ∝ ΔG_k / ΔO_k²,   ΔG_k = L^V_k(N) − L^V_k(N+n),   ΔO_k = O_k(N+n) − O_k(N),   O = L^V − L^T

    (:func:`blend_weights`: a branch that gained no generalisation gets 0). The per-modality heads are
    training-only: they are neither tested nor counted in the model's parameters. Needs a fusion with
    per-modality branches (``Fusion.modality_branches``). The history gets ``train_ce_image``/``_text``
    (the heads' CE) and ``gblend_w_fused``/``_image``/``_text`` (the weights used next).
    """

    name = "gblend"
    description = "G-Blend (Wang et al. 2020): per-modality heads, loss weights ∝ ΔG/ΔO² on validation"
    level_option = "blends"
    level_bounds = (0.0, 1.0)
    test_config = {"blends": [0.0, 1.0]}

    def __init__(
        self, *, blends: tuple[float, ...] = (1.0,), every: int = 1, train_rows: int = 4096, seed: int = 0
    ) -> None:
        self.blends = check_rates(self.name, "blends", blends, *self.level_bounds)
        if int(every) < 1 or int(train_rows) < 1:
            raise ValueError(
                f"protocol 'gblend': every and train_rows must be >= 1, got {every}, {train_rows}"
            )
        self.every, self.train_rows, self.seed = int(every), int(train_rows), int(seed)

    def hook(self, level: float, trainer: Any) -> TrainingHook:
        self.check_fusion(trainer.config.fusion)
        return _GBlendHook(self, self.check_level(level), trainer)


class _GBlendHook(TrainingHook):
    def __init__(self, protocol: GBlend, blend: float, trainer: Any) -> None:
        self.blend, self.every = blend, protocol.every
        self.model, self.data, self.loss_fn = trainer.model, trainer.data, trainer.loss_fn
        self.device, self.batch_size = trainer.device, trainer.config.eval_batch_size
        dim, classes = trainer.config.dim, trainer.data.num_classes
        self.module = nn.ModuleDict({m: nn.Linear(dim, classes) for m in ("image", "text")}).to(
            trainer.device
        )
        n_train = trainer.data.size("train")
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(protocol.seed))
        self.train_rows = order[: protocol.train_rows].sort().values
        self.weights = {branch: 1.0 / len(BRANCHES) for branch in BRANCHES}
        self.start: dict[str, tuple[float, float]] = {}

    def _losses(self, out: Any, labels: Tensor) -> dict[str, Tensor]:
        features = out.modality_features
        logits = {"fused": out.logits, **{m: self.module[m](features[m].float()) for m in ("image", "text")}}
        return {branch: self.loss_fn(value, labels, {})[0] for branch, value in logits.items()}

    def loss(
        self, batch: dict[str, Any], out: Any, total: Tensor, parts: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        losses = self._losses(out, batch["label"])
        blended = sum(self.weights[k] * losses[k] for k in BRANCHES)
        total = total + self.blend * (blended - losses["fused"])
        parts.update({f"ce_{m}": losses[m].detach() for m in ("image", "text")})
        return total, parts

    def _split_losses(self, split: str, rows: Tensor) -> dict[str, float]:
        sums = dict.fromkeys(BRANCHES, 0.0)
        was_training = self.model.training
        self.model.eval()
        self.module.eval()
        with torch.no_grad():
            for chunk in rows.split(self.batch_size):
                batch = self.data.batch(split, chunk)
                batch = {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in batch.items()}
                out = self.model.forward_batch(batch)
                for branch, value in self._losses(out, batch["label"]).items():
                    sums[branch] += float(value) * len(chunk)
        self.model.train(was_training)
        self.module.train(was_training)
        return {branch: value / max(1, len(rows)) for branch, value in sums.items()}

    def _checkpoint(self) -> dict[str, tuple[float, float]]:
        train = self._split_losses("train", self.train_rows)
        val = self._split_losses("val", torch.arange(self.data.size("val")))
        return {branch: (train[branch], val[branch]) for branch in BRANCHES}

    def on_fit_start(self, trainer: Any) -> None:
        self.start = self._checkpoint()

    def on_epoch_end(self, trainer: Any, epoch: int, record: dict[str, float]) -> None:
        if epoch % self.every == 0:
            end = self._checkpoint()
            self.weights = blend_weights(self.start, end, self.weights)
            self.start = end
        record.update({f"gblend_w_{branch}": weight for branch, weight in self.weights.items()})
