"""Knowledge distillation (Hinton, Vinyals & Dean 2015): a student trained against a teacher's logits.

    L = α · CE(s, y) + (1 − α) · T² · KL(softmax(t/T) ‖ softmax(s/T)) + Σ_k λ_k aux_k

s: the student's logits, t: the teacher's (the mean of its seeds' logits), y: the label, T the
temperature (``RunConfig.distill_t``), α the weight of the hard-label loss (``distill_alpha``). The T²
keeps the soft term's gradient on the scale of the hard one's as T changes (Hinton et al., §2). CE is
the run's own classification loss (λ_ce, class weights, label smoothing); the aux losses of the fusion
and head are unchanged. The KL is averaged over the batch (``batchmean``).

The teacher's logits over the training split are computed once by the bench (:mod:`fusionzoo.bench.
distill`) and stored in an ``.npz`` file with what they were computed from (the teacher's identity and
the data fingerprint); :class:`DistillHook` refuses a file whose teacher, data or row count is not
this run's before training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fusionzoo.protocols._training import TrainingHook

__all__ = ["DistillHook", "distillation_loss", "read_teacher_logits", "write_teacher_logits"]


def distillation_loss(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """``T² · KL(softmax(t/T) ‖ softmax(s/T))``, averaged over the batch."""
    t = float(temperature)
    log_student = F.log_softmax(student.float() / t, dim=-1)
    log_teacher = F.log_softmax(teacher.float() / t, dim=-1)
    return F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True) * (t * t)


def write_teacher_logits(path: Path, logits: np.ndarray, meta: dict[str, Any]) -> Path:
    """Write ``logits`` (N, C) with ``meta`` (teacher identity, data fingerprint, ...) atomically."""
    import io

    from fusionzoo.io import atomic_write

    buffer = io.BytesIO()
    np.savez(
        buffer, logits=np.asarray(logits, dtype=np.float32), meta=np.array(json.dumps(meta, sort_keys=True))
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buffer.getvalue())
    return path


def read_teacher_logits(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """``(logits, meta)`` of a file written by :func:`write_teacher_logits`."""
    with np.load(Path(path)) as payload:
        return np.asarray(payload["logits"]), json.loads(str(payload["meta"]))


class DistillHook(TrainingHook):
    """The distillation term in one run's loss (a trainer hook, as a training protocol's)."""

    def __init__(self, trainer: Any) -> None:
        config, data = trainer.config, trainer.data
        if not config.distill_logits:
            raise ValueError(
                f"run distilled from teacher {config.distill_teacher} has no teacher logits file "
                "(distill_logits): the bench computes it before training (fusionzoo bench --distill-from)"
            )
        logits, meta = read_teacher_logits(config.distill_logits)
        expected = {
            "teacher": config.distill_teacher,
            "data_fingerprint": str(getattr(data, "fingerprint", "") or meta.get("data_fingerprint", "")),
            "rows": int(data.size("train")),
            "num_classes": int(data.num_classes),
        }
        wrong = {k: (meta.get(k), v) for k, v in expected.items() if meta.get(k) != v}
        if wrong or logits.shape != (expected["rows"], expected["num_classes"]):
            raise ValueError(
                f"teacher logits {config.distill_logits} do not belong to this run: "
                + ", ".join(f"{k} {got!r} ≠ {want!r}" for k, (got, want) in wrong.items())
                + (f"; shape {logits.shape}" if not wrong else "")
            )
        self.teacher = torch.from_numpy(logits).to(trainer.device)
        self.temperature, self.alpha = config.distill_t, config.distill_alpha
        self.loss_fn = trainer.loss_fn

    def loss(
        self, batch: dict[str, Any], out: Any, total: Tensor, parts: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        teacher = self.teacher[batch["index"].to(self.teacher.device)]
        soft = distillation_loss(out.logits, teacher, self.temperature)
        hard = self.loss_fn(out.logits, batch["label"], {})[0]  # λ_ce·CE, inside ``total``
        total = total + (1.0 - self.alpha) * (soft - hard)
        parts["distill_kl"] = soft.detach()
        return total, parts
