"""``fusionzoo data`` commands through click's CliRunner (and once as a real subprocess)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from fusionzoo.cli import main
from fusionzoo.testing.glami_files import glami_rows, glami_zip, write_glami
from fusionzoo.testing.range_server import RangeServer


@pytest.fixture
def runner():
    return CliRunner()


def run(runner, *args):
    return runner.invoke(main, ["data", *map(str, args)], catch_exceptions=False)


def test_every_data_command_has_plugin_option(runner):
    for command in ("glami1m", "synth", "info"):
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


def test_info_prints_tables(runner, tmp_path):
    result = run(
        runner, "info", "--data-dir", tmp_path, "--synth-size", 240, "--synth-image-size", 16, "--limit", 100
    )
    assert result.exit_code == 0, result.output
    for expected in ("train", "val", "test", "geo counts", "label_source counts", "unknown", "cz"):
        assert expected in result.output
    bad = run(
        runner, "info", "--data-dir", tmp_path, "--synth-size", 240, "--synth-image-size", 16, "--geo", "xx"
    )
    assert (
        bad.exit_code == 1 and "geo(s) xx not in the dataset" in bad.output and "Traceback" not in bad.output
    )


def test_info_csv_needs_csv(runner, tmp_path):
    result = run(runner, "info", "--dataset", "csv")
    assert result.exit_code == 2 and "--csv" in result.output


def test_glami1m_download_verify_and_status(runner, tmp_path):
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
    from fusionzoo.testing.glami_files import jpeg_bytes

    (tmp_path / "pics").mkdir()
    rows = []
    for i in range(30):
        (tmp_path / "pics" / f"{i}.jpg").write_bytes(jpeg_bytes())
        rows.append({"file": f"{i}.jpg", "caption": f"caption {i}", "kind": ["shoe", "bag", "hat"][i % 3]})
    pd.DataFrame(rows).to_csv(tmp_path / "mine.csv", index=False)
    result = run(
        runner, "info", "--dataset", "csv", "--csv", tmp_path / "mine.csv", "--image-col", "file",
        "--text-cols", "caption", "--label-col", "kind", "--image-root", tmp_path / "pics", "--data-dir", tmp_path / "d",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "classes (3" in result.output and "shoe" in result.output
