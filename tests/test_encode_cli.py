"""``fusionzoo encode``: defaults on the embedded dataset, explicit local encoders, clear offline errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fusionzoo.cli import main
from fusionzoo.encoders.testing import save_tiny_image_model, save_tiny_text_model


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("synth-data")


def invoke(*args):
    result = CliRunner().invoke(main, ["encode", *args], catch_exceptions=False)
    return result


def test_encode_synth_with_default_encoders_then_reuse(synth_dir, tmp_path):
    cache = tmp_path / "cache"
    args = [
        "--dataset",
        "synth",
        "--data-dir",
        str(synth_dir),
        "--cache-dir",
        str(cache),
        "--option",
        "size=240",
    ]
    first = invoke(*args, "--probe")
    assert first.exit_code == 0, first.output
    assert "encoding" in first.output and "items/s" in first.output
    assert "train:" in first.output and ", encoded," in first.output
    assert "image (" in first.output and ", 17, 192)" in first.output
    assert "linear probe (train → test)" in first.output
    assert (cache / "models").is_dir()  # locally built default encoders live in the cache dir
    second = invoke(*args)
    assert second.exit_code == 0, second.output
    assert "reusing cached features" in second.output and ", reused," in second.output
    assert "encoding" not in second.output


def test_encode_with_local_encoders_and_options(synth_dir, tmp_path):
    image_dir = save_tiny_image_model(tmp_path / "vit")
    text_dir = save_tiny_text_model(
        tmp_path / "bert", ["cotton shirt for women", "leather bag", "wool dress"]
    )
    result = invoke(
        "--dataset",
        "synth",
        "--data-dir",
        str(synth_dir),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--option",
        "size=240",
        "--image-encoder",
        f"timm:{image_dir}",
        "--text-encoder",
        f"hf:{text_dir}",
        "--text-max-length",
        "6",
        "--image-tokens",
        "4",
        "--splits",
        "val,test",
        "--batch-size",
        "8",
    )
    assert result.exit_code == 0, result.output
    assert "were truncated" in result.output
    assert "val: " in result.output and "test: " in result.output and "train: " not in result.output
    assert ", 4, 32)" in result.output  # 4 pooled image tokens of width 32


def test_missing_weights_offline_is_a_clean_cli_error(synth_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(
        main,
        [
            "encode",
            "--dataset",
            "synth",
            "--data-dir",
            str(synth_dir),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--option",
            "size=240",
            "--image-encoder",
            "timm:vit_base_patch16_224",
        ],
    )
    assert result.exit_code == 1
    assert "Error:" in result.output and "--no-pretrained" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image-tokens", "some"], "--image-tokens"),
        (["--splits", "train,dev"], "unknown split"),
        (["--option", "size"], "KEY=VALUE"),
    ],
)
def test_bad_options_are_usage_errors(synth_dir, args, message):
    result = CliRunner().invoke(main, ["encode", "--data-dir", str(synth_dir), *args])
    assert result.exit_code == 2 and message in result.output


def test_installed_script_runs_as_a_subprocess(synth_dir, tmp_path):
    script = shutil.which("fusionzoo", path=str(Path(sys.executable).parent)) or "fusionzoo"
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    completed = subprocess.run(
        [
            script,
            "encode",
            "--dataset",
            "synth",
            "--data-dir",
            str(synth_dir),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--option",
            "size=240",
            "--splits",
            "test",
            "--image-tokens",
            "mean",
            "--text-tokens",
            "mean",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert "test:" in completed.stdout and "(40, 1, 192)" in completed.stdout
    assert "encoding 40 rows" in completed.stderr
