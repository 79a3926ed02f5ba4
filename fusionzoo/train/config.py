"""``RunConfig``: everything that defines one training run (model, optimiser, loss, stopping, device).

A run's identity in the results table is ``(dataset, fusion spec, head spec, seed, config_hash())``.
:meth:`RunConfig.config_hash` hashes every field that changes *what is trained* except the seed (so
runs that differ only by seed share a hash and are aggregated together) and except the execution
settings ``device``/``amp``/``num_workers`` (where a run executes does not change what it is).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EXECUTION_FIELDS",
    "MODES",
    "PAPER_LOSS_TERMS",
    "PAPER_LOSS_WEIGHT",
    "TRAINING_SEMANTICS",
    "RunConfig",
    "parse_loss_weights",
]

MODES = ("frozen", "finetune")
# Version of what a training run means (optimiser, schedule, loss composition, evaluation, built-in
# plugin defaults). It is part of every run's identity: bump it with any change that moves a number,
# so results of older code are never reused or averaged with new ones.
# 2: the standard weight-decay split, paper_loss's three terms, qformer self-attention, unimodal projections
# 3: the schedule is transformers' get_cosine_schedule_with_warmup (warm-up starts at 0, not 1/W)
# 4: the linear probe scores with predict_proba (two-class data); label_noise runs take class buckets
#    and class weights from the labels they trained on (the noisy ones)
# 5: macro-F1 over all C classes (labels=range(C)); bench --tune-trials trains the best trial's fusion and
#    head specs, its trials train with seed 10000 + [tune] seed and pick best epochs on the [train] metric
# 6: every run also reports test_ece_ts / test_temperature (temperature scaling fitted on validation) and
#    the reliability bins of its test predictions (diagnostics rows of kind "reliability")
TRAINING_SEMANTICS = 6
AMP_CHOICES = ("auto", "off", "bf16", "fp16")
PAPER_LOSS_WEIGHT = 1.0 / 3.0  # FLUID: L = 1/3·CE + 1/3·L_contrastive + 1/3·L_MoE
# the three terms of FLUID's loss (paper §4: λ1 = λ2 = λ3 = 1/3); L_MoE is the load-balancing loss
PAPER_LOSS_TERMS = ("ce", "contrastive", "load_balance")
# distill_logits: where this machine finds the teacher's cached logits (their content is part of the
# identity through distill_teacher and the data fingerprint, not their path)
EXECUTION_FIELDS = frozenset({"device", "amp", "eval_batch_size", "distill_logits"})
DISTILL_FIELDS = ("distill_teacher", "distill_t", "distill_alpha", "distill_logits")


@dataclass
class RunConfig:
    """One training run.

    fusion / head: registry spec strings (``"fluid:gating=false"``, ``"moe:experts=8"``); ``head=None``
        means the fusion's natural head (its ``default_head`` class attribute).
    dim: width D every modality is projected to.
    warmup: fraction of the total optimiser steps spent in linear warm-up (then cosine decay to 0).
    grad_clip: max global gradient norm (0 disables clipping).
    loss_weights: λ per loss name; ``"ce"`` is the classification loss, any other key an auxiliary loss
        returned by the fusion or head. An unnamed aux loss gets the default its plugin declares
        (``aux_loss_weights``), else 1.
    paper_loss: FLUID's loss, λ = 1/3 for exactly the paper's three terms (:data:`PAPER_LOSS_TERMS`:
        CE, ``contrastive``, ``load_balance``); every other aux loss (e.g. the MoE head's ``router_z``)
        keeps its plugin's default, else 1. Explicit ``loss_weights`` still win.
    patience: epochs without improvement of ``metric`` on validation before stopping (0 = never stop).
    metric: the validation column that picks the best epoch (any registered metric column, e.g.
        ``macro_f1``, ``accuracy``, ``acc_tail``; its direction comes from the metric registry).
    mode: ``frozen`` (cached tokens) or ``finetune`` (encoders in the graph, ``backbone_lr``,
        ``freeze_layers``).
    amp: ``auto`` = bf16 on CUDA when supported, else fp16 on CUDA, never on CPU.
    train_protocol: a train-time protocol ``SPEC@LEVEL`` (``missing_image@0.3``, ``label_noise@0.2``;
        :mod:`fusionzoo.protocols._train_time`), canonicalised; ``""`` = clean training (and then not
        part of the hash, so clean runs keep their identity).
    distill_teacher: the identity of the teacher this run is distilled from (``bench --distill-from``:
        its config id and seeds, :mod:`fusionzoo.bench.distill`); ``""`` = no distillation (and then
        none of the ``distill_*`` fields is part of the hash). ``distill_t`` (T > 0) and
        ``distill_alpha`` (α in [0, 1]) weigh α·CE + (1 − α)·T²·KL (:mod:`fusionzoo.train.distill`);
        ``distill_logits`` is the file of the teacher's cached logits (an execution setting).
    """

    fusion: str = "concat_mlp"
    head: str | None = None
    seed: int = 0
    dim: int = 128
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.05
    grad_clip: float = 1.0
    label_smoothing: float = 0.0
    class_weighted: bool = False
    loss_weights: dict[str, float] = field(default_factory=dict)
    paper_loss: bool = False
    patience: int = 3
    metric: str = "macro_f1"
    modality_embeddings: bool = True
    position_embeddings: bool = False
    max_positions: int = 512
    dropout: float = 0.0
    mode: str = "frozen"
    backbone_lr: float = 1e-5
    freeze_layers: int = 0
    device: str = "auto"
    amp: str = "auto"
    eval_batch_size: int = 512
    train_protocol: str = ""
    distill_teacher: str = ""
    distill_t: float = 4.0
    distill_alpha: float = 0.5
    distill_logits: str = ""

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the accepted values."""
        problems = []
        if not isinstance(self.fusion, str) or not self.fusion:
            problems.append(f"fusion must be a non-empty spec string, got {self.fusion!r}")
        if self.head is not None and (not isinstance(self.head, str) or not self.head):
            problems.append(f"head must be a spec string or None, got {self.head!r}")
        for name in ("dim", "epochs", "batch_size", "eval_batch_size", "max_positions"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        for name in ("patience", "freeze_layers", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                problems.append(f"{name} must be an integer >= 0, got {value!r}")
        for name in ("lr", "backbone_lr"):
            if not float(getattr(self, name)) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)!r}")
        if float(self.weight_decay) < 0 or float(self.grad_clip) < 0:
            problems.append("weight_decay and grad_clip must be >= 0")
        if not 0 <= float(self.warmup) < 1:
            problems.append(f"warmup is a fraction of the steps in [0, 1), got {self.warmup!r}")
        if not 0 <= float(self.label_smoothing) < 1:
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if not 0 <= float(self.dropout) < 1:
            problems.append(f"dropout must be in [0, 1), got {self.dropout!r}")
        try:
            from fusionzoo.metrics.base import column_direction

            column_direction(self.metric, "predictions")
        except ValueError as exc:  # RegistryError: no registered metric writes this column
            problems.append(f"metric (early stopping on validation): {exc}")
        if self.train_protocol:
            try:
                from fusionzoo.protocols._train_time import canonical_train_protocol

                self.train_protocol = canonical_train_protocol(self.train_protocol)
            except ValueError as exc:  # RegistryError
                problems.append(f"train_protocol: {exc}")
        if not float(self.distill_t) > 0:
            problems.append(f"distill_t (the distillation temperature T) must be > 0, got {self.distill_t!r}")
        if not 0 <= float(self.distill_alpha) <= 1:
            problems.append(
                f"distill_alpha (the weight α of CE) must be in [0, 1], got {self.distill_alpha!r}"
            )
        if self.distill_teacher and self.mode != "frozen":
            problems.append(
                "distill_teacher: distillation reads the teacher's logits over cached tokens: mode frozen"
            )
        if self.mode not in MODES:
            problems.append(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.amp not in AMP_CHOICES:
            problems.append(f"amp must be one of {', '.join(AMP_CHOICES)}, got {self.amp!r}")
        if not isinstance(self.loss_weights, dict):
            problems.append(f"loss_weights must be a dict name -> weight, got {self.loss_weights!r}")
        else:
            for key, value in self.loss_weights.items():
                if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, int | float):
                    problems.append(f"loss_weights[{key!r}] must be a number, got {value!r}")
                elif value < 0:
                    problems.append(f"loss_weights[{key!r}] must be >= 0, got {value!r}")
        if problems:
            raise ValueError("invalid RunConfig: " + "; ".join(problems))
        # normalise numeric types so equal configs hash equally (1 vs 1.0)
        for name in (
            "lr",
            "weight_decay",
            "warmup",
            "grad_clip",
            "label_smoothing",
            "dropout",
            "backbone_lr",
            "distill_t",
            "distill_alpha",
        ):
            setattr(self, name, float(getattr(self, name)))
        self.loss_weights = {str(k): float(v) for k, v in sorted(self.loss_weights.items())}

    # ----------------------------------------------------------------------------------------- helpers
    def resolved_head(self) -> str:
        """The head spec: ``head`` if set, else the fusion class's ``default_head`` ("mlp" if unset)."""
        if self.head:
            return self.head
        from fusionzoo import registry

        name, _ = registry.parse_spec(self.fusion)
        return str(getattr(registry.get_fusion_class(name), "default_head", "mlp") or "mlp")

    def loss_weight(self, name: str, default: float = 1.0) -> float:
        """λ for loss ``name`` ("ce" or an aux loss name): the explicit weight, else 1/3 for a paper
        term under ``paper_loss``, else ``default`` (the plugin's declared default, or 1)."""
        if name in self.loss_weights:
            return self.loss_weights[name]
        if self.paper_loss and name in PAPER_LOSS_TERMS:
            return PAPER_LOSS_WEIGHT
        return float(default)

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)

    # --------------------------------------------------------------------------------------- serialise
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["loss_weights"] = dict(self.loss_weights)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build from a dict; unknown keys raise with the valid field names."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"unknown RunConfig field(s): {', '.join(unknown)}; valid fields: {', '.join(sorted(names))}"
            )
        values = dict(data)
        if isinstance(values.get("loss_weights"), str):
            values["loss_weights"] = parse_loss_weights(values["loss_weights"])
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        return cls.from_dict(json.loads(text))

    def identity(self) -> dict[str, Any]:
        """The fields the hash covers: all but ``seed`` and the execution settings."""
        data = self.to_dict()
        data["head"] = self.head  # as given; the resolved head is part of the run identity separately
        for name in EXECUTION_FIELDS | {"seed"}:
            data.pop(name, None)
        if not self.train_protocol:  # clean training: the identity of runs from before the field existed
            data.pop("train_protocol", None)
        if not self.distill_teacher:  # no teacher: the identity of runs from before distillation existed
            for name in DISTILL_FIELDS:
                data.pop(name, None)
        if self.mode == "frozen":  # finetune-only knobs do not change a frozen run
            data.pop("backbone_lr", None)
            data.pop("freeze_layers", None)
        return data

    def config_hash(self) -> str:
        """12 hex digits identifying the training setup (seed and device excluded)."""
        payload = json.dumps(self.identity(), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def parse_loss_weights(text: str) -> dict[str, float]:
    """``"contrastive=0.333,load_balance=0.333"`` -> ``{"contrastive": 0.333, "load_balance": 0.333}``."""
    out: dict[str, float] = {}
    for item in (part.strip() for part in str(text).split(",")):
        if not item:
            continue
        if "=" not in item:
            raise ValueError(f"loss weight {item!r} must look like name=value (e.g. contrastive=0.333)")
        key, value = (s.strip() for s in item.split("=", 1))
        if not key:
            raise ValueError(f"loss weight {item!r} has no name")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"loss weight {item!r}: {value!r} is not a number") from None
        if weight < 0 or weight != weight:
            raise ValueError(f"loss weight {item!r} must be a number >= 0")
        out[key] = weight
    return out
