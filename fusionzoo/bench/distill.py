"""``fusionzoo bench --distill-from RUNS_DIR[:FUSION]``: students trained against a finished teacher.

1. :func:`resolve_teacher` (before any data is touched) reads the teacher's runs directory: the
   finished (``ok``) runs of one configuration — the one named by ``:FUSION`` (a fusion name, spec or
   config-id prefix), or the only one there — each with its checkpoint, in frozen mode. The teacher
   is the mean of its seeds' logits; its identity ``<config_id>:seeds=0+1+2:<fusion>`` becomes the students'
   ``RunConfig.distill_teacher``, so another teacher (another configuration or other seeds) makes
   other student runs.
2. :func:`check_teacher_data` (when the grid is expanded, still before encoding): the teacher was
   trained on the same dataset with the same data fingerprint as the students (same files, options,
   encoders, hence the same rows and classes); anything else is refused.
3. :func:`teacher_logits` (after the features are prepared, before training): the teacher's logits
   over the cached training tokens, computed once per (teacher identity, data fingerprint) and cached
   as ``<runs dir>/teachers/<key>.npz`` with both in its metadata; the number of classes of every
   teacher checkpoint is checked against the data's.

The students are the fusions named in ``--fusions``; the unimodal baselines and the linear probe are
references and train as usual.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusionzoo.errors import InputError

__all__ = ["Teacher", "TeacherError", "check_teacher_data", "resolve_teacher", "teacher_logits"]


class TeacherError(InputError, ValueError):
    """A teacher that cannot be used (missing, ambiguous, unfinished, other data)."""


@dataclass(frozen=True)
class Teacher:
    runs_dir: Path
    config_id: str
    dataset: str
    data_fingerprint: str
    fusion: str
    head: str
    run_ids: tuple[str, ...]
    seeds: tuple[int, ...]

    @property
    def identity(self) -> str:
        """What a student's run identity records of its teacher: configuration, seeds averaged and (for
        the reader) its fusion spec: ``<config_id>:seeds=0+1+2:<fusion>``."""
        return f"{self.config_id}:seeds={'+'.join(str(s) for s in self.seeds)}:{self.fusion}"

    @property
    def label(self) -> str:
        return f"{self.fusion} + {self.head} ({len(self.seeds)} seed{'s' if len(self.seeds) > 1 else ''})"

    def checkpoint(self, run_id: str) -> Path:
        return self.runs_dir / "checkpoints" / run_id


def _split(text: str) -> tuple[Path, str | None]:
    if Path(text).is_dir() or ":" not in text:
        return Path(text), None
    path, _, which = text.rpartition(":")
    return Path(path), which or None


def resolve_teacher(text: str) -> Teacher:
    """The teacher ``RUNS_DIR[:FUSION]`` names (module docstring, step 1); :class:`TeacherError` else."""
    import json

    from fusionzoo import registry
    from fusionzoo.results.store import RESULTS_FILE, ResultsStore

    runs_dir, which = _split(str(text))
    if not (runs_dir / RESULTS_FILE).is_file():
        raise TeacherError(
            f"{runs_dir} has no {RESULTS_FILE}: train the teacher first (fusionzoo bench --out {runs_dir})"
        )
    frame = ResultsStore(runs_dir).load()
    frame = frame[frame["status"].astype(str) == "ok"]
    if "kind" in frame.columns:  # the linear-probe floor is a reference, not a teacher
        frame = frame[frame["kind"].fillna("train").astype(str) != "probe"]
    if which:
        name = which.partition(":")[0]  # a fusion name, or a spec's name
        matches = (
            (frame["fusion"].astype(str) == which)
            | (frame["fusion"].astype(str).map(lambda f: registry.parse_spec(f)[0]) == name)
            | frame["config_id"].astype(str).str.startswith(which)
        )
        frame = frame[matches]
    configs = list(dict.fromkeys(frame["config_id"].astype(str)))
    if not configs:
        raise TeacherError(
            f"{runs_dir} has no finished run{f' of {which!r}' if which else ''}; its finished fusions: "
            f"{', '.join(sorted(set(ResultsStore(runs_dir).load()['fusion'].astype(str)))) or 'none'}"
        )
    if len(configs) > 1:
        listed = "; ".join(
            f"{cid[:10]} = {frame.loc[frame['config_id'] == cid, 'fusion'].iloc[0]} + "
            f"{frame.loc[frame['config_id'] == cid, 'head'].iloc[0]}"
            for cid in configs
        )
        raise TeacherError(
            f"{runs_dir}{f':{which}' if which else ''} holds {len(configs)} configurations ({listed}); "
            "name one: RUNS_DIR:FUSION or RUNS_DIR:CONFIG_ID_PREFIX"
        )
    runs = frame[frame["config_id"].astype(str) == configs[0]].sort_values("seed")
    first = runs.iloc[0]
    mode = json.loads(str(first.get("config") or "{}")).get("mode", "frozen")
    if mode != "frozen":
        raise TeacherError(f"teacher {first['fusion']} in {runs_dir} was trained in {mode} mode; distillation "
                           "reads cached tokens: use a frozen-mode teacher")  # fmt: skip
    teacher = Teacher(
        runs_dir,
        configs[0],
        str(first["dataset"]),
        str(first["data_fingerprint"]),
        str(first["fusion"]),
        str(first["head"]),
        tuple(runs["run_id"].astype(str)),
        tuple(int(s) for s in runs["seed"]),
    )
    missing = [rid for rid in teacher.run_ids if not (teacher.checkpoint(rid) / "config.json").is_file()]
    if missing:
        raise TeacherError(
            f"teacher {teacher.label} in {runs_dir}: no checkpoint for run(s) {', '.join(missing)} "
            "(trained with checkpoints off, or deleted)"
        )
    return teacher


def check_teacher_data(teacher: Teacher, dataset: str, fingerprint: str) -> None:
    """The students' data is the teacher's (module docstring, step 2)."""
    if dataset != teacher.dataset or fingerprint != teacher.data_fingerprint:
        raise TeacherError(
            f"teacher {teacher.label} in {teacher.runs_dir} was trained on {teacher.dataset} (data fingerprint "
            f"{teacher.data_fingerprint[:12]}), the students on {dataset} ({fingerprint[:12]}): the teacher's "
            "logits are only defined on its own rows and classes; use the same dataset, options, limit and "
            "encoders"
        )


def teacher_logits(teacher: Teacher, data: Any, out_dir: Path, device: str = "cpu") -> Path:
    """The cached file of the teacher's mean logits over ``data``'s training split (module docstring,
    step 3): reused when its metadata matches, else computed and written atomically."""
    import torch

    from fusionzoo.evaluation.tasks import load_model
    from fusionzoo.train.distill import read_teacher_logits, write_teacher_logits
    from fusionzoo.train.evaluation import predict

    fingerprint = str(getattr(data, "fingerprint", ""))
    check_teacher_data(teacher, teacher.dataset, fingerprint or teacher.data_fingerprint)
    meta = {
        "teacher": teacher.identity,
        "data_fingerprint": fingerprint,
        "rows": int(data.size("train")),
        "num_classes": int(data.num_classes),
    }
    key = hashlib.sha256(f"{teacher.identity}\0{fingerprint}".encode()).hexdigest()[:16]
    path = Path(out_dir) / "teachers" / f"{key}.npz"
    if path.is_file():
        try:
            if {k: v for k, v in read_teacher_logits(path)[1].items() if k in meta} == meta:
                return path
        except (OSError, ValueError, KeyError):
            pass  # unreadable: computed again
    total = None
    for run_id in teacher.run_ids:
        model = load_model(teacher.checkpoint(run_id), device)
        classes = int(getattr(model, "num_classes", data.num_classes))
        if classes != data.num_classes:
            raise TeacherError(
                f"teacher run {run_id} ({teacher.label}) predicts {classes} classes, the students' data has "
                f"{data.num_classes}"
            )
        with torch.no_grad():
            logits = predict(model, data, "train", device=device).astype(np.float64)
        total = logits if total is None else total + logits
    mean = (total / len(teacher.run_ids)).astype(np.float32)
    extra = {"fusion": teacher.fusion, "head": teacher.head, "runs": list(teacher.run_ids)}
    return write_teacher_logits(path, mean, {**meta, **extra, "runs_dir": str(teacher.runs_dir)})
