"""The fitted linear probe as a model: pooled token batches → standardisation → logistic regression.

For a batch of tokens (image ``(B, Li, Ei)``, text ``(B, Lt, Et)`` with their masks), the probe's
features are the masked means of the real tokens (``features = image | text | both``, concatenated in
that order; a sample with no real token of a modality pools to 0), then

    x̃ = (x − μ) / s,    p(y = c_k | x) = softmax_k(w_k · x̃ + b_k)    over the K classes seen in training

(μ, s: the training split's ``StandardScaler``; W, b: scikit-learn's ``LogisticRegression``). Classes
absent from the training split get probability 0. On two-class data scikit-learn keeps one weight
vector w (``decision_function`` is (N,), ``predict_proba = [1 − σ(w·x̃ + b), σ(w·x̃ + b)]``); it is
stored as the two rows (0, 0) and (w, b), whose softmax is exactly that. The model's scores are these
probabilities (:meth:`ProbeModel.forward_batch`), so ``fusionzoo eval`` runs the probe through the same
prediction loop and protocols as every trained fusion.

The checkpoint folder holds ``model.safetensors`` (the tensors ``mean``, ``scale``, ``weight``,
``bias``, ``classes``) and ``config.json`` (``kind = "linear_probe"``, the RunConfig, the feature view
and the number of classes): no pickle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from fusionzoo.io import atomic_output, atomic_write
from fusionzoo.layers.pooling import masked_mean

__all__ = ["PROBE_KIND", "ProbeModel", "is_probe_checkpoint", "load_probe", "save_probe"]

PROBE_KIND = "linear_probe"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


class ProbeModel(nn.Module):
    """A fitted probe (see the module docstring); every tensor is a float64 buffer, nothing trains."""

    def __init__(
        self,
        features: str,
        num_classes: int,
        mean: Any,
        scale: Any,
        weight: Any,
        bias: Any,
        classes: Any,
    ) -> None:
        super().__init__()
        self.features, self.num_classes = str(features), int(num_classes)
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean), dtype=torch.float64))
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale), dtype=torch.float64))
        self.register_buffer("weight", torch.as_tensor(np.asarray(weight), dtype=torch.float64))
        self.register_buffer("bias", torch.as_tensor(np.asarray(bias), dtype=torch.float64))
        self.register_buffer("classes", torch.as_tensor(np.asarray(classes), dtype=torch.int64))

    @classmethod
    def from_sklearn(cls, features: str, num_classes: int, scaler: Any, model: Any) -> ProbeModel:
        """The probe of a fitted ``StandardScaler`` and ``LogisticRegression`` (binary: two rows)."""
        weight, bias = np.asarray(model.coef_, np.float64), np.asarray(model.intercept_, np.float64)
        if len(model.classes_) == 2 and weight.shape[0] == 1:
            weight = np.vstack([np.zeros_like(weight), weight])
            bias = np.concatenate([np.zeros(1), bias])
        return cls(features, num_classes, scaler.mean_, scaler.scale_, weight, bias, model.classes_)

    def pool(self, batch: dict[str, Tensor]) -> Tensor:
        """``(B, d)`` float64 masked-mean features of a token batch."""
        views = []
        if self.features in ("image", "both"):
            views.append(masked_mean(batch["image"].double(), batch.get("image_mask")))
        if self.features in ("text", "both"):
            views.append(masked_mean(batch["text"].double(), batch.get("text_mask")))
        return torch.cat(views, dim=1)

    def scores(self, pooled: Tensor) -> Tensor:
        """``(B, C)`` class probabilities of pooled features (0 for classes never seen in training)."""
        logits = ((pooled - self.mean) / self.scale) @ self.weight.T + self.bias
        probs = torch.zeros(pooled.shape[0], self.num_classes, dtype=torch.float64, device=pooled.device)
        probs[:, self.classes] = logits.softmax(dim=1)
        return probs

    def forward_batch(self, batch: dict[str, Tensor], check: bool = False) -> Any:
        from fusionzoo.train.model import ModelOutput

        return ModelOutput(logits=self.scores(self.pool(batch)).float())

    def parameter_count(self) -> int:
        """The fitted coefficients and intercepts (what the results table's ``params`` reports)."""
        return int(self.weight.numel() + self.bias.numel())


def save_probe(directory: str | Path, probe: ProbeModel, config: Any, info: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into ``directory``, each atomically (weights first)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: buffer.detach().cpu().contiguous() for name, buffer in probe.named_buffers()}
    with atomic_output(directory / WEIGHTS) as path:
        save_file(tensors, str(path), metadata={"format": "pt", "fusionzoo": "LinearProbe"})
    payload = {
        "kind": PROBE_KIND,
        "run_config": config.to_dict(),
        "probe": {"features": probe.features, "num_classes": probe.num_classes, **info},
    }
    atomic_write(directory / CONFIG, json.dumps(payload, indent=2, sort_keys=True, default=float))
    return directory


def is_probe_checkpoint(directory: str | Path) -> bool:
    """Whether ``directory`` holds a linear-probe checkpoint (its ``config.json`` says so)."""
    path = Path(directory) / CONFIG
    try:
        return json.loads(path.read_text()).get("kind") == PROBE_KIND
    except (OSError, ValueError, AttributeError):
        return False


def load_probe(directory: str | Path, device: str = "cpu") -> ProbeModel:
    """The probe saved by :func:`save_probe` in ``directory``."""
    directory = Path(directory)
    info = json.loads((directory / CONFIG).read_text())["probe"]
    tensors = load_file(str(directory / WEIGHTS), device=str(device))
    probe = ProbeModel(info["features"], info["num_classes"], **{k: tensors[k].cpu() for k in tensors})
    return probe.to(device).eval()
