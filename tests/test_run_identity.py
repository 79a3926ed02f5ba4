"""Honest numbers: a run's identity covers everything that changes it, bad input fails before any work.

Each test here failed on the code before the run-identity change (the cases of the honest-numbers
issue): a changed limit or data option reused old runs and averaged them with new ones, a bad
hyperparameter was found only after encoding and the command exited 0, a tiny CSV trained on empty
splits, a study resumed with another budget, ``fluid@mlp`` was refused on the command line.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from fusionzoo.cli import main
from fusionzoo.cli.bench import bench

TINY_DATA = ["size=240", "n_colours=2", "n_shapes=1", "n_genders=1", "n_materials=2"]
TINY_RUN = ["--epochs", "1", "--dim", "16", "--batch-size", "32", "--no-unimodal"]


def _args(data_dir: Path, out: Path, *extra: str) -> list[str]:
    args = ["--data-dir", str(data_dir), "--out", str(out), *TINY_RUN]
    for option in TINY_DATA:
        args += ["--data-option", option]
    return [*args, *extra]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("identity-data")
    result = CliRunner().invoke(
        bench, _args(root, root / "warmup", "--fusions", "concat_mlp", "--seeds", "0")
    )
    assert result.exit_code == 0, result.output
    return root


def _table(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "results.parquet")


# ---------------------------------------------------------------------------------------- run identity
def test_a_changed_limit_is_a_new_run_and_never_averaged_with_the_old_one(data_dir, tmp_path):
    out = tmp_path / "runs"
    first = CliRunner().invoke(bench, _args(data_dir, out, "--fusions", "concat_mlp", "--seeds", "0"))
    assert first.exit_code == 0, first.output
    limited = CliRunner().invoke(
        bench, _args(data_dir, out, "--fusions", "concat_mlp", "--seeds", "0", "--limit", "100")
    )
    assert limited.exit_code == 0, limited.output
    assert "0 finished run(s) reused" in limited.output
    assert "not reused" in limited.output and "the data changed" in limited.output
    table = _table(out)
    assert len(table) == 2 and table["data_fingerprint"].nunique() == 2
    # seeds 0,1 with the limit: seed 0 (limited) is reused, seed 1 trains; seed 0 of the full data stays out
    both = CliRunner().invoke(
        bench, _args(data_dir, out, "--fusions", "concat_mlp", "--seeds", "0,1", "--limit", "100")
    )
    assert both.exit_code == 0, both.output
    assert "1 finished run(s) reused" in both.output
    table = _table(out)
    limited_rows = table[table["data_fingerprint"] == table["data_fingerprint"].iloc[-1]]
    assert sorted(limited_rows["seed"]) == [0, 1] and limited_rows["config_id"].nunique() == 1
    assert table["config_id"].nunique() == 2  # two configurations, never one group
    assert "concat_mlp │ mlp  │     2" in both.output.replace(
        "\u2502", "│"
    )  # the mean is over the 2 limited seeds


def test_a_changed_data_option_or_encoder_changes_the_fingerprint(data_dir):
    from fusionzoo.prepare import DataOptions, resolve_inputs

    def fingerprint(**changes):
        options = {"size": 240, "n_colours": 2, "n_shapes": 1, "n_genders": 1, "n_materials": 2}
        data = {**options, **changes.pop("data", {})}
        return resolve_inputs(DataOptions(dataset="synth", data_dir=str(data_dir), data=data, **changes))

    base = fingerprint()
    assert fingerprint().fingerprint == base.fingerprint  # stable
    assert fingerprint(limit=50).fingerprint != base.fingerprint
    assert fingerprint(data={"zipf": 0.0}).fingerprint != base.fingerprint
    assert fingerprint(encoders={"text_max_length": 8}).fingerprint != base.fingerprint
    assert fingerprint(encoders={"image_tokens": "mean"}).fingerprint != base.fingerprint
    assert fingerprint(mode="finetune").fingerprint != base.fingerprint


def test_a_halved_csv_is_a_new_dataset(tmp_path):
    from fusionzoo.prepare import DataOptions, resolve_inputs

    rows = []
    for i in range(60):
        path = tmp_path / f"img{i}.jpg"
        Image.new("RGB", (8, 8), (i * 4, 0, 0)).save(path)
        rows.append({"image": path.name, "text": f"item {i}", "label": ["a", "b", "c"][i % 3]})
    csv = tmp_path / "data.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)

    def fingerprint():
        options = DataOptions(
            dataset="csv",
            data_dir=str(tmp_path / "d"),
            data={"csv": str(csv)},
            encoders=_tiny_encoders(tmp_path),
        )
        return resolve_inputs(options).fingerprint

    full = fingerprint()
    pd.DataFrame(rows[:30]).to_csv(csv, index=False)
    assert fingerprint() != full


def _tiny_encoders(tmp_path: Path) -> dict[str, str]:
    from fusionzoo.testing.tiny_encoders import save_tiny_image_model, save_tiny_text_model

    image_dir, text_dir = tmp_path / "img-model", tmp_path / "txt-model"
    if not image_dir.exists():
        save_tiny_image_model(image_dir)
        save_tiny_text_model(text_dir, ["item"] * 4)
    return {"image": f"timm:{image_dir}", "text": f"hf:{text_dir}"}


# -------------------------------------------------------------------------------- fail fast, exit non-zero
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fusions", "fluid:querys=8"], "has no hyperparameter 'querys' (did you mean 'queries'?)"),
        (["--fusions", "fluid:queries=abc"], "hyperparameter 'queries' expects int"),
        (["--fusions", "fluid", "--dim", "7"], "dim=7"),
        (["--fusions", "film", "--metric", "acuracy"], "did you mean 'accuracy'"),
        (["--fusions", "film", "--data-option", "colour=red"], "unknown synth option(s) colour"),
    ],
)
def test_bad_input_fails_before_any_data_is_generated(tmp_path, args, message):
    data_dir = tmp_path / "data"
    for extra in ([], ["--dry-run"]):
        result = CliRunner().invoke(
            bench, ["--data-dir", str(data_dir), "--out", str(tmp_path / "r"), *args, *extra]
        )
        assert result.exit_code == 2, result.output
        assert message in result.output, result.output
        assert "Traceback" not in result.output
    assert not data_dir.exists()  # nothing generated, nothing encoded


def test_typo_in_a_fusion_options_table_is_an_error(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text('[bench]\nfusions = ["film"]\n[fusion_options.filmm]\npool = "max"\n')
    result = CliRunner().invoke(
        bench, ["--config", str(preset), "--data-dir", str(tmp_path / "d"), "--dry-run"]
    )
    assert (
        result.exit_code == 2
        and "[fusion_options.filmm]" in result.output
        and "did you mean 'film'" in result.output
    )
    preset.write_text('[bench]\nfusions = ["film"]\n[fusion_options.film]\npoool = "max"\n')
    result = CliRunner().invoke(
        bench, ["--config", str(preset), "--data-dir", str(tmp_path / "d"), "--dry-run"]
    )
    assert result.exit_code == 2 and "no hyperparameter 'poool'" in result.output


def test_tune_rejects_a_bad_spec_before_loading_data(tmp_path):
    result = CliRunner().invoke(
        main, ["tune", "--fusion", "fluid:querys=8", "--data-dir", str(tmp_path / "d"), "--storage", "memory"]
    )
    assert result.exit_code == 2 and "did you mean 'queries'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "d").exists()


def test_a_failed_run_makes_the_command_exit_non_zero(data_dir, tmp_path):
    plugin = tmp_path / "broken.py"
    plugin.write_text(
        "import torch\nfrom fusionzoo.fusions._vector import VectorFusion\nfrom fusionzoo.registry import register_fusion\n\n"
        "@register_fusion\nclass Broken(VectorFusion):\n    name = 'test_broken_in_training'\n"
        "    def __init__(self, dim):\n        super().__init__(dim)\n        self.p = torch.nn.Linear(dim, dim)\n"
        "    def fuse(self, v, t, has_image, has_text):\n        raise RuntimeError('kaputt')\n"
    )
    result = CliRunner().invoke(
        bench,
        _args(
            data_dir,
            tmp_path / "r",
            "--fusions",
            "test_broken_in_training,concat_mlp",
            "--seeds",
            "0",
            "--plugin",
            str(plugin),
        ),
    )
    assert result.exit_code == 1, result.output
    assert "1 of 2 runs failed" in result.output and "kaputt" in result.output
    assert set(_table(tmp_path / "r")["status"]) == {"ok", "failed"}


def test_pinned_head_is_accepted_on_the_command_line(tmp_path):
    result = CliRunner().invoke(
        bench,
        [
            "--fusions",
            "fluid@mlp,film",
            "--data-dir",
            str(tmp_path / "d"),
            "--out",
            str(tmp_path / "r"),
            "--dry-run",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "│ mlp " in result.output and "moe" not in result.output.split("runs")[-1]
    bad = CliRunner().invoke(bench, ["--fusions", "fluid@mpl", "--dry-run"])
    assert bad.exit_code == 2 and "head 'mpl' is not registered" in bad.output


# -------------------------------------------------------------------------------------------- tiny data
def test_a_three_row_csv_is_a_clear_error_before_encoding(tmp_path):
    for i in range(3):
        Image.new("RGB", (8, 8)).save(tmp_path / f"i{i}.jpg")
    pd.DataFrame(
        {"image": [f"i{i}.jpg" for i in range(3)], "text": ["a", "b", "c"], "label": ["x", "y", "x"]}
    ).to_csv(tmp_path / "tiny.csv", index=False)
    result = CliRunner().invoke(
        bench,
        ["--dataset", "csv", "--data-option", f"csv={tmp_path / 'tiny.csv'}", "--data-dir", str(tmp_path / "d"),
         "--fusions", "film", "--out", str(tmp_path / "r")],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "split is empty" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "d" / "features").exists()  # refused before any encoding
    assert not (tmp_path / "r" / "results.parquet").exists()


# ----------------------------------------------------------------------------------- disk and runs dir
def test_an_unwritable_runs_directory_is_named_up_front(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(bench, ["--fusions", "film", "--out", str(blocker / "runs"), "--dry-run"])
    assert result.exit_code == 2 and "not writable" in result.output and "Traceback" not in result.output


def test_a_full_disk_while_saving_is_one_clear_message_and_the_rerun_resumes(data_dir, tmp_path, monkeypatch):
    import fusionzoo.train.checkpoint as checkpoint

    out = tmp_path / "runs"
    real = checkpoint.save_model
    calls = {"n": 0}

    def full_on_second(model, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(model, filename, metadata=metadata)

    monkeypatch.setattr(checkpoint, "save_model", full_on_second)
    args = _args(
        data_dir, out, "--fusions", "concat_mlp,film", "--seeds", "0", "--jobs", "1"
    )  # in-process: the patch applies
    result = CliRunner().invoke(bench, args)
    assert result.exit_code == 1, result.output
    assert "disk full while writing" in result.output and "rerun the same command" in result.output
    assert "Traceback" not in result.output
    assert list(_table(out)["status"]) == ["ok"]  # the finished run is kept, the interrupted one absent
    monkeypatch.setattr(checkpoint, "save_model", real)
    again = CliRunner().invoke(bench, args)
    assert again.exit_code == 0 and "1 finished run(s) reused" in again.output
    assert len(_table(out)) == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_real_full_disk_mid_grid(data_dir, tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        args = _args(
            data_dir, mount / "runs", "--fusions", "concat_mlp,film,gated,cross_attention", "--seeds", "0,1"
        )
        result = CliRunner().invoke(bench, args)
        assert result.exit_code == 1, result.output
        assert "disk full while writing" in result.output and "Traceback" not in result.output
    finally:
        subprocess.run(["umount", str(mount)], check=False)


# ------------------------------------------------------------------------------ code and regime identity
EDITABLE_PLUGIN = """import torch
from fusionzoo.fusions._vector import VectorFusion
from fusionzoo.registry import register_fusion


@register_fusion
class Editable(VectorFusion):
    name = "test_editable_fusion"

    def __init__(self, dim):
        super().__init__(dim)
        self.p = torch.nn.Linear(2 * dim, dim)

    def fuse(self, v, t, has_image, has_text):
        return self.p(torch.cat([v, t], dim=-1)){suffix}
"""


def test_an_edited_plugin_file_is_retrained_and_the_bench_says_why(data_dir, tmp_path):
    """The source of a --plugin file is part of its runs' identity: unchanged, the run is reused; edited,
    it is trained again and the bench names the plugin whose code changed."""
    plugin = tmp_path / "editable.py"
    plugin.write_text(EDITABLE_PLUGIN.format(suffix=""))
    args = _args(data_dir, tmp_path / "r", "--fusions", "test_editable_fusion", "--seeds", "0",
                 "--plugin", str(plugin), "--jobs", "1")  # fmt: skip
    first = CliRunner().invoke(bench, args)
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(bench, args)
    assert again.exit_code == 0 and "1 finished run(s) reused" in again.output, again.output
    plugin.write_text(EDITABLE_PLUGIN.format(suffix=" * 2.0"))
    edited = CliRunner().invoke(bench, args)
    assert edited.exit_code == 0, edited.output
    assert "0 finished run(s) reused" in edited.output
    assert "not reused" in edited.output and "the code of test_editable_fusion changed" in edited.output
    table = _table(tmp_path / "r")
    assert len(table) == 2 and table["code"].nunique() == 2 and table["config_id"].nunique() == 2


def test_a_plugin_hash_covers_the_modules_it_builds_on(tmp_path, monkeypatch):
    """A plugin's code hash follows its imports into its own package (and fusionzoo's shared layers),
    not into modules it does not import; a built-in's hash covers the layers it imports."""
    import importlib
    import sys

    from fusionzoo.results.identity import plugin_hash

    package = tmp_path / "fz_codepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("SCALE = 1.0\n")
    (package / "unrelated.py").write_text("X = 1\n")
    (package / "fusion.py").write_text(
        "from fz_codepkg.helpers import SCALE\nfrom fusionzoo.layers.mlp import MLP\n\nclass F:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("fz_codepkg.fusion")
    try:
        before = plugin_hash(module.F)
        assert len(before) == 12 and plugin_hash(module.F) == before  # stable
        (package / "unrelated.py").write_text("X = 2  # not imported by the plugin\n")
        assert plugin_hash(module.F) == before
        (package / "helpers.py").write_text("SCALE = 2.0  # a helper of the plugin changed\n")
        assert plugin_hash(module.F) != before
    finally:
        for name in [n for n in sys.modules if n.startswith("fz_codepkg")]:
            del sys.modules[name]

    from fusionzoo import registry
    from fusionzoo.results import identity

    film = registry.get_entry("fusion", "film").obj
    assert plugin_hash(film) == plugin_hash(film)
    files = {path.name for path, _ in identity._HASHES[film.__module__][1]}
    assert {"film.py", "_vector.py", "pooling.py"} <= files  # its base class and the shared layers


def test_the_world_size_and_the_precision_are_part_of_a_run(monkeypatch):
    """DDP world size and the AMP dtype change training: they are in the identity, the bench names them
    when a run is not reused, and a process that would train in another regime refuses the run."""
    import torch

    from fusionzoo.experiment import RunSpec
    from fusionzoo.launch.base import RunTask, execute_run
    from fusionzoo.results.store import reuse_report
    from fusionzoo.train.config import RunConfig

    run = RunConfig(fusion="concat_mlp", head="linear", dim=8, epochs=1, device="auto", amp="auto")
    one = RunSpec.create("synth", run, "fp")
    two = RunSpec.create("synth", run, "fp", world=2)
    assert one.identity["regime"] == "world=1,precision=fp32" and two.identity["regime"].startswith("world=2")
    assert one.run_id != two.run_id and one.config_hash == two.config_hash
    row = {**one.identity_columns(), "status": "ok"}
    _, reasons = reuse_report([two], pd.DataFrame([row]))
    assert list(reasons) == ["the training regime changed (world 1 → 2)"]

    # on a CUDA machine with bf16, "auto" trains in bf16: another run than fp16 or fp32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    regimes = {amp: RunSpec.create("synth", run.replace(amp=amp), "fp").identity["regime"]
               for amp in ("auto", "fp16", "off")}  # fmt: skip
    assert regimes == {
        "auto": "world=1,precision=bf16",
        "fp16": "world=1,precision=fp16",
        "off": "world=1,precision=fp32",
    }
    on_gpu = RunSpec.create("synth", run, "fp")
    monkeypatch.undo()  # this process has no GPU: it would train the bf16 run in fp32
    record = execute_run(RunTask(on_gpu, None), data=None)
    assert record.status == "failed"
    assert (
        "world=1,precision=fp32" in record.row["error"]
        and "says world=1,precision=bf16" in record.row["error"]
    )
