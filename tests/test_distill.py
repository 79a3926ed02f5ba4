"""Knowledge distillation (issue 21 item 3): the loss formula, the trainer's hook against cached teacher
logits, ``fusionzoo bench --distill-from`` teacher → student end to end, the refusal of a missing,
ambiguous or mismatched teacher before any work, and the teacher in the student's identity."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from fusionzoo.bench.distill import Teacher, TeacherError, resolve_teacher, teacher_logits
from fusionzoo.cli.bench import bench
from fusionzoo.results.store import ResultsStore
from fusionzoo.testing.token_features import synthetic_features
from fusionzoo.train.config import RunConfig
from fusionzoo.train.distill import distillation_loss, read_teacher_logits, write_teacher_logits
from fusionzoo.train.trainer import Trainer


# ------------------------------------------------------------------------------------------------ formula
def test_distillation_loss_is_t_squared_kl_of_the_softened_distributions():
    student = torch.tensor([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]])
    teacher = torch.tensor([[3.0, 1.0, 0.0], [0.0, 0.0, 4.0]])
    t = 2.0
    p = (teacher / t).softmax(-1)
    q = (student / t).softmax(-1)
    expected = t * t * (p * (p.log() - q.log())).sum(-1).mean()
    assert float(distillation_loss(student, teacher, t)) == pytest.approx(float(expected), rel=1e-6)
    assert float(distillation_loss(teacher, teacher, 3.0)) == pytest.approx(0.0, abs=1e-6)


def test_the_student_loss_is_alpha_ce_plus_one_minus_alpha_soft(tmp_path):
    data = synthetic_features(64, 32, 32)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(64, data.num_classes)).astype(np.float32) * 3
    meta = {"teacher": "abc:seeds=0", "data_fingerprint": data.fingerprint, "rows": 64, "num_classes": 6}
    path = write_teacher_logits(tmp_path / "t.npz", logits, meta)
    assert np.array_equal(read_teacher_logits(path)[0], logits)
    config = RunConfig(
        fusion="concat_mlp", dim=16, epochs=1, batch_size=16, device="cpu", distill_teacher="abc:seeds=0",
        distill_logits=str(path), distill_t=2.0, distill_alpha=0.3,
    )  # fmt: skip
    trainer = Trainer(config, data)
    (hook,) = trainer.hooks
    indices = torch.tensor([5, 0, 63, 17])
    batch = data.batch("train", indices)
    out = trainer.model.forward_batch(batch)
    total, parts = trainer.loss_fn(out.logits, batch["label"], out.aux_losses)
    total, parts = hook.loss(batch, out, total, parts)
    ce = F.cross_entropy(out.logits, batch["label"])
    soft = 4.0 * F.kl_div(
        F.log_softmax(out.logits / 2.0, -1), F.softmax(torch.from_numpy(logits[indices.numpy()]) / 2.0, -1),
        reduction="batchmean",
    )  # fmt: skip
    assert float(total.detach()) == pytest.approx(float((0.3 * ce + 0.7 * soft).detach()), rel=1e-5)
    assert float(parts["distill_kl"]) == pytest.approx(float(soft.detach()), rel=1e-5)
    assert trainer.fit().status == "ok"


def test_the_hook_refuses_logits_of_another_teacher_or_data(tmp_path):
    data = synthetic_features(64, 32, 32)
    logits = np.zeros((64, 6), dtype=np.float32)
    meta = {"teacher": "other:seeds=0", "data_fingerprint": data.fingerprint, "rows": 64, "num_classes": 6}
    path = write_teacher_logits(tmp_path / "t.npz", logits, meta)
    config = RunConfig(
        fusion="concat_mlp", dim=16, device="cpu", distill_teacher="abc:seeds=0", distill_logits=str(path)
    )
    with pytest.raises(ValueError, match="do not belong to this run: teacher 'other:seeds=0'"):
        Trainer(config, data)


def test_the_teacher_is_part_of_the_student_identity_and_no_teacher_keeps_the_old_one():
    plain = RunConfig()
    student = RunConfig(distill_teacher="aaa:seeds=0+1+2")
    assert "distill_teacher" not in plain.identity() and "distill_t" not in plain.identity()
    assert student.config_hash() != plain.config_hash()
    assert RunConfig(distill_teacher="bbb:seeds=0+1+2").config_hash() != student.config_hash()
    assert RunConfig(distill_teacher="aaa:seeds=0").config_hash() != student.config_hash()
    assert RunConfig(distill_teacher="aaa:seeds=0+1+2", distill_t=2.0).config_hash() != student.config_hash()
    where = RunConfig(distill_teacher="aaa:seeds=0+1+2", distill_logits="/elsewhere/t.npz")
    assert where.config_hash() == student.config_hash()  # the file's location is not what is trained
    with pytest.raises(ValueError, match="distill_alpha"):
        RunConfig(distill_alpha=1.5)


# ------------------------------------------------------------------------------------------- end to end
TINY = ["--dim", "16", "--batch-size", "64", "--device", "cpu", "--epochs", "1", "--no-unimodal"]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """Two teacher configurations (film, concat_mlp) × seeds 0, 1 on the tiny embedded data."""
    import os

    root = tmp_path_factory.mktemp("distill")
    os.environ["FUSIONZOO_DATA"] = str(root / "data")
    out = root / "teacher"
    args = ["--fusions", "film,concat_mlp", "--seeds", "0,1", "--data-option", "size=240", *TINY]
    result = CliRunner().invoke(bench, [*args, "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    yield out
    os.environ.pop("FUSIONZOO_DATA", None)


def _student(teacher: str, out, *extra: str):
    args = ["--fusions", "concat_mlp", "--seeds", "0", "--data-option", "size=240", *TINY, *extra]
    return CliRunner().invoke(
        bench, [*args, "--distill-from", teacher, "--out", str(out)], catch_exceptions=False
    )


@pytest.mark.slow
def test_teacher_to_student_end_to_end(teacher_dir, tmp_path):
    out = tmp_path / "students"
    result = _student(f"{teacher_dir}:film", out, "--distill-t", "2", "--distill-alpha", "0.25")
    assert result.exit_code == 0, result.output
    teacher = resolve_teacher(f"{teacher_dir}:film")
    assert teacher.seeds == (0, 1) and teacher.fusion.startswith("film")
    assert f"teacher {teacher.label}" in result.output
    assert "concat_mlp ⟨student of film" in result.output  # the leaderboard names the teacher
    row = ResultsStore(out).load().iloc[0]
    config = json.loads(row["config"])
    assert config["distill_teacher"] == teacher.identity and config["distill_alpha"] == 0.25
    assert row["status"] == "ok" and np.isfinite(row["test_accuracy"])
    history = pd.read_parquet(out / "history.parquet")
    assert history["train_distill_kl"].notna().all()
    # the cached logits: the mean of the two teacher seeds' logits over the training rows
    (cached,) = (out / "teachers").glob("*.npz")
    logits, meta = read_teacher_logits(cached)
    assert meta["teacher"] == teacher.identity and meta["data_fingerprint"] == teacher.data_fingerprint
    stamp = cached.stat().st_mtime_ns
    again = _student(
        f"{teacher_dir}:film", out, "--distill-t", "2", "--distill-alpha", "0.25", "--seeds", "1"
    )
    assert again.exit_code == 0, again.output
    assert cached.stat().st_mtime_ns == stamp  # computed once, reused
    # the same student of another teacher is another run
    other = _student(f"{teacher_dir}:concat_mlp", out, "--distill-t", "2", "--distill-alpha", "0.25")
    assert other.exit_code == 0, other.output
    assert "0 finished run(s) reused" in other.output
    frame = ResultsStore(out).load()
    assert frame["config_id"].nunique() == 2 and len(frame) == 3
    assert len(list((out / "teachers").glob("*.npz"))) == 2


@pytest.mark.slow
def test_missing_ambiguous_and_mismatched_teachers_are_refused_before_work(teacher_dir, tmp_path):
    out = tmp_path / "students"
    missing = _student(str(tmp_path / "nowhere"), out)
    assert (
        missing.exit_code == 2
        and "--distill-from" in missing.output
        and "no results.parquet" in missing.output
    )
    ambiguous = _student(str(teacher_dir), out)
    assert ambiguous.exit_code == 2 and "holds 2 configurations" in ambiguous.output
    assert "RUNS_DIR:FUSION" in ambiguous.output
    unknown = _student(f"{teacher_dir}:fluid", out)
    assert unknown.exit_code == 2 and "no finished run of 'fluid'" in unknown.output
    other_data = CliRunner().invoke(
        bench,
        ["--fusions", "concat_mlp", "--seeds", "0", "--data-option", "size=200", *TINY,
         "--distill-from", f"{teacher_dir}:film", "--out", str(out)],
    )  # fmt: skip
    assert other_data.exit_code == 2, other_data.output
    assert "data fingerprint" in other_data.output and "same dataset, options" in other_data.output
    assert not (out / "results.parquet").exists() and not (out / "teachers").exists()


@pytest.mark.slow
def test_a_teacher_with_other_classes_is_refused(teacher_dir, tmp_path):
    teacher = resolve_teacher(f"{teacher_dir}:film")
    info = json.loads((teacher.checkpoint(teacher.run_ids[0]) / "config.json").read_text())
    classes = int(info["model"]["num_classes"])
    data = synthetic_features(32, 16, 16, num_classes=classes + 1)
    data.fingerprint = teacher.data_fingerprint  # the same fingerprint, other classes: still refused
    with pytest.raises(
        TeacherError, match=f"predicts {classes} classes, the students' data has {classes + 1}"
    ):
        teacher_logits(teacher, data, tmp_path)


def test_teacher_identity_names_its_configuration_and_seeds(tmp_path):
    teacher = Teacher(tmp_path, "cfg123", "synth", "fp", "film", "mlp", ("r0", "r1"), (0, 1))
    assert teacher.identity == "cfg123:seeds=0+1:film"
    assert (
        Teacher(tmp_path, "cfg123", "synth", "fp", "film", "mlp", ("r0",), (0,)).identity != teacher.identity
    )


# ------------------------------------------------------------------------------------------------ report
def test_the_pareto_plot_marks_teacher_and_student_and_joins_them(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    import report_tables as rt

    from fusionzoo import registry
    from fusionzoo.report.base import Figure, ResultsView
    from fusionzoo.results.store import write_table

    store = rt.build_runs_dir(tmp_path, optuna_study=False)
    table = pd.read_parquet(store.results_path)
    configs = table.drop_duplicates("config_id").set_index("fusion")["config_id"]
    student, teacher = str(configs.iloc[0]), str(configs.iloc[1])
    rows = table["config_id"] == student
    with_teacher = json.loads(table.loc[rows, "config"].iloc[0]) | {"distill_teacher": f"{teacher}:seeds=0+1"}
    table.loc[rows, "config"] = json.dumps(with_teacher)
    write_table(store.results_path, table)
    section = registry.create("reporter", "pareto").render(ResultsView.of(store), "section")
    figure = next(b for b in section.blocks if isinstance(b, Figure))
    traces = [t for t in figure.plotly.data if t.xaxis in (None, "x")]
    points = {t.name: t for t in traces if t.mode == "markers"}
    (student_name,) = [n for n in points if "· student of " in n]
    (teacher_name,) = [n for n in points if n.endswith("· teacher")]
    assert student_name.endswith(f"student of {teacher_name.removesuffix(' · teacher')}")
    assert (
        points[student_name].marker.symbol == "triangle-up" and points[teacher_name].marker.symbol == "star"
    )
    (line,) = [t for t in traces if t.mode == "lines" and t.line.dash == "dot"]
    assert sorted(line.x) == sorted([points[student_name].x[0], points[teacher_name].x[0]])
    assert "stars: distillation teachers" in figure.caption
    from rich.console import Console

    console = Console(record=True, width=400)
    registry.create("reporter", "leaderboard").render(ResultsView.of(store), "terminal", console=console)
    teacher_fusion = teacher_name.removesuffix(" · teacher").split(" ")[0]
    assert f"⟨student of {teacher_fusion}⟩" in console.export_text()
