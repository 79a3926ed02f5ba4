"""``fusionzoo data`` commands through click's CliRunner (and once as a real subprocess)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from fusionzoo.cli import main
from fusionzoo.data.glami_files import glami_rows, glami_zip, write_glami
from fusionzoo.testing.range_server import RangeServer


@pytest.fixture
def runner():
    return CliRunner()


def run(runner, *args):
    return runner.invoke(main, ["data", *map(str, args)], catch_exceptions=False)


def test_every_data_command_has_plugin_option(runner):
    for command in ("glami1m", "synth", "info", "status", "verify"):
        result = run(runner, command, "--help")
        assert result.exit_code == 0 and "--plugin" in result.output


def test_synth_writes_then_reuses(runner, tmp_path):
    first = run(runner, "synth", "--size", 200, "--image-size", 16, "--out", tmp_path / "s")
    assert first.exit_code == 0, first.output
    assert "generated" in first.output and "36 classes" in first.output
    train = pd.read_csv(tmp_path / "s" / "GLAMI-1M-dataset" / "GLAMI-1M-train.csv")
    assert len(train) + len(pd.read_csv(tmp_path / "s" / "GLAMI-1M-dataset" / "GLAMI-1M-test.csv")) == 200
    again = run(runner, "synth", "--size", 200, "--image-size", 16, "--out", tmp_path / "s")
    assert "reused" in again.output
    bad = run(runner, "synth", "--size", 20, "--out", tmp_path / "tiny")
    assert bad.exit_code == 1 and "too small" in bad.output


SMALL_SYNTH = ("--data-option", "size=240", "--data-option", "image_size=16")


def test_info_prints_tables(runner, tmp_path):
    result = run(runner, "info", "--data-dir", tmp_path, *SMALL_SYNTH, "--limit", 100)
    assert result.exit_code == 0, result.output
    for expected in ("train", "val", "test", "geo counts", "label_source counts", "unknown", "cz"):
        assert expected in result.output
    bad = run(runner, "info", "--data-dir", tmp_path, *SMALL_SYNTH, "--data-option", "geos=xx")
    assert (
        bad.exit_code == 1 and "geo(s) xx not in the dataset" in bad.output and "Traceback" not in bad.output
    )
    two = run(runner, "info", "--data-dir", tmp_path, *SMALL_SYNTH, "--data-option", "geos=cz;sk")
    assert two.exit_code == 0 and "│ hu " not in two.output and "│ cz " in two.output


def test_info_csv_needs_csv(runner, tmp_path):
    result = run(runner, "info", "--dataset", "csv", "--data-dir", tmp_path)
    assert result.exit_code == 1 and "--data-option csv=" in result.output


def test_unknown_dataset_or_option_is_a_usage_error(runner, tmp_path):
    for command in ("info", "status", "verify"):
        unknown = run(runner, command, "--dataset", "glamy", "--data-dir", tmp_path)
        assert unknown.exit_code == 2 and "did you mean 'glami1m'" in unknown.output, command
        option = run(
            runner, command, "--dataset", "glami1m", "--data-option", "rot=x", "--data-dir", tmp_path
        )
        assert option.exit_code == 2 and "unknown glami1m option(s) rot" in option.output, command


def test_status_and_verify_work_for_every_builtin_dataset(runner, tmp_path):
    """status/verify belong to the backend: the same two commands serve synth, csv and glami1m."""
    from fusionzoo import registry

    empty = run(runner, "status", "--dataset", "synth", "--data-dir", tmp_path / "d", *SMALL_SYNTH)
    assert empty.exit_code == 0 and "synth: not generated yet" in empty.output
    assert not (tmp_path / "d").exists()  # status builds nothing
    for name in ("synth", "csv", "glami1m"):
        options = registry.create("dataset", name).example(tmp_path / name)
        flags = [x for k, v in options.items() for x in ("--data-option", f"{k}={v}") if k != "data_dir"]
        flags += ["--dataset", name, "--data-dir", options.get("data_dir", tmp_path)]
        verify = run(runner, "verify", *flags)  # loads (synth: generates) and checks every image
        assert verify.exit_code == 0 and "OK" in verify.output and "problems: 0" in verify.output, (
            verify.output
        )
        status = run(runner, "status", *flags)
        assert status.exit_code == 0 and f"{name}: ready (" in status.output, status.output
    glami = registry.create("dataset", "glami1m").example(tmp_path / "broken")
    (Path(glami["root"]) / "GLAMI-1M-dataset" / "images" / "5003.jpg").unlink()
    verify = run(runner, "verify", "--dataset", "glami1m", "--data-option", f"root={glami['root']}")
    assert verify.exit_code == 1 and "item_id 1003" in verify.output and "missing" in verify.output


def test_glami1m_download_verify_and_status(runner, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the suite runs with HF_HUB_OFFLINE=1
    dataset = write_glami(tmp_path / "src", glami_rows(20), glami_rows(5, split="test", start=100))
    payload = glami_zip(dataset, tmp_path / "GLAMI-1M-dataset.zip").read_bytes()
    server = RangeServer()
    server.files["GLAMI-1M-dataset.zip"] = payload
    try:
        data = tmp_path / "data"
        result = run(
            runner, "glami1m", "--download", "--data-dir", data, "--url", server.url("GLAMI-1M-dataset.zip"),
            "--md5", hashlib.md5(payload).hexdigest(), "--verify",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "OK" in result.output and "images checked: 25" in result.output
        status = run(runner, "glami1m", "--data-dir", data)
        assert "GLAMI-1M at" in status.output
        corrupt = run(runner, "glami1m", "--download", "--data-dir", tmp_path / "d2", "--url",
                      server.url("GLAMI-1M-dataset.zip"), "--md5", "f" * 32)  # fmt: skip
        assert corrupt.exit_code == 1 and "kept aside" in corrupt.output
    finally:
        server.close()
    images = data / "glami1m" / "GLAMI-1M-dataset" / "images"
    (images / "5003.jpg").unlink()
    (images / "5004.jpg").write_bytes(b"\xff\xd8\xff broken")
    shallow = run(runner, "glami1m", "--verify", "--data-dir", data)
    assert shallow.exit_code == 1 and "item_id 1003" in shallow.output and "missing" in shallow.output
    deep = run(runner, "glami1m", "--verify", "--deep", "--data-dir", data)
    assert deep.exit_code == 1 and "item_id 1004" in deep.output and "corrupt" in deep.output


def test_glami1m_usage_errors(runner, tmp_path):
    assert run(runner, "glami1m", "--test-only").exit_code == 2
    missing = run(runner, "glami1m", "--data-dir", tmp_path)
    assert missing.exit_code == 0 and "not found" in missing.output
    verify = run(runner, "glami1m", "--verify", "--data-dir", tmp_path)
    assert verify.exit_code == 1 and "no GLAMI-1M dataset under" in verify.output


def test_real_subprocess(tmp_path):
    env = {**os.environ, "FUSIONZOO_DATA": str(tmp_path), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "fusionzoo.cli", "data", "synth", "--size", "150", "--image-size", "16"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert str(tmp_path / "synth") in result.stdout.replace("\n", "")


def test_info_on_a_csv_dataset(runner, tmp_path):
    from fusionzoo.data.glami_files import jpeg_bytes

    (tmp_path / "pics").mkdir()
    rows = []
    for i in range(30):
        (tmp_path / "pics" / f"{i}.jpg").write_bytes(jpeg_bytes())
        rows.append({"file": f"{i}.jpg", "caption": f"caption {i}", "kind": ["shoe", "bag", "hat"][i % 3]})
    pd.DataFrame(rows).to_csv(tmp_path / "mine.csv", index=False)
    result = run(
        runner, "info", "--dataset", "csv", "--data-option", f"csv={tmp_path / 'mine.csv'}", "--data-option",
        "image_col=file", "--data-option", "text_cols=caption", "--data-option", "label_col=kind",
        "--data-option", f"image_root={tmp_path / 'pics'}", "--data-dir", tmp_path / "d",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "classes (3" in result.output and "shoe" in result.output
