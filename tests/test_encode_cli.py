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
from fusionzoo.testing.tiny_encoders import save_tiny_image_model, save_tiny_text_model


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
        "--data-option",
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
        "--data-option",
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
            "--data-option",
            "size=240",
            "--image-encoder",
            "timm:vit_base_patch16_224",
        ],
    )
    assert result.exit_code == 1
    assert "Error:" in result.output and "--no-pretrained" in result.output
    assert "Traceback" not in result.output


def test_a_full_disk_while_encoding_is_one_clean_message(synth_dir, tmp_path, monkeypatch):
    import errno

    import fusionzoo.encoders.cache as cache

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache, "append_chunk", full)
    args = ["encode", "--dataset", "synth", "--data-dir", str(synth_dir), "--cache-dir", str(tmp_path / "c")]
    result = CliRunner().invoke(main, [*args, "--data-option", "size=240"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert "Error: disk full while writing the feature cache" in result.output
    assert "rerun the same command" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image-tokens", "some"], "--image-tokens"),
        (["--splits", "train,dev"], "unknown split"),
        (["--data-option", "size"], "must look like key=value"),
        (["--option", "size=240"], "renamed --data-option size=240"),
        (["--data-option", "sise=240"], "unknown synth option(s) sise"),
        (["--dataset", "synht"], "did you mean 'synth'"),
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
            "--data-option",
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


def write_glami_layout(root: Path, n_train: int = 30, n_test: int = 10) -> Path:
    """A tiny dataset in the real GLAMI-1M layout: GLAMI-1M-dataset/{train,test}.csv + images/<id>.jpg."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    folder = root / "GLAMI-1M-dataset"
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    categories = [(17, "womens-dresses"), (4, "mens-shirts"), (230, "bags")]
    rows = []
    for i in range(n_train + n_test):
        category, slug = categories[i % 3]
        colour = [(200, 40, 40), (40, 180, 60), (40, 60, 200)][i % 3]
        Image.fromarray(np.full((40, 30, 3), colour, np.uint8)).save(folder / "images" / f"{1000 + i}.jpg")
        rows.append(
            {
                "item_id": 500 + i,
                "image_id": 1000 + i,
                "geo": ["cz", "sk", "ro"][i % 3],
                "name": f"{slug.replace('-', ' ')} {rng.integers(100)}",
                "description": "" if i % 5 == 0 else "soft cotton, new collection",
                "category": category,
                "category_name": slug,
                "label_source": ["admin", "custom-tag", ""][i % 3],
            }
        )
    frame = pd.DataFrame(rows)
    frame.iloc[:n_train].to_csv(folder / "GLAMI-1M-train.csv", index=False)
    frame.iloc[n_train:].to_csv(folder / "GLAMI-1M-test.csv", index=False)
    return root


def test_encode_a_glami_format_dataset_with_local_encoders(tmp_path):
    root = write_glami_layout(tmp_path / "glami")
    image_dir = save_tiny_image_model(tmp_path / "vit")
    text_dir = save_tiny_text_model(
        tmp_path / "bert", ["womens dresses soft cotton", "mens shirts", "bags new"]
    )
    args = [
        "--dataset",
        "glami1m",
        "--data-dir",
        str(tmp_path / "data"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--data-option",
        f"root={root}",
        "--image-encoder",
        f"timm:{image_dir}",
        "--text-encoder",
        f"hf:{text_dir}",
    ]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    for split in ("train", "val", "test"):
        assert f"{split}: " in result.output
    assert "(10, 17, 32)" in result.output  # the 10 test rows, 17 tokens of width 32
    again = invoke(*args)
    assert again.exit_code == 0 and again.output.count(", reused,") == 3


def test_finetune_batches_on_the_glami_format_dataset(tmp_path):
    import torch

    from fusionzoo.datasets import load_dataset
    from fusionzoo.encoders.image import create_image_encoder
    from fusionzoo.encoders.live import LiveData
    from fusionzoo.encoders.text import create_text_encoder

    root = write_glami_layout(tmp_path / "glami")
    splits = load_dataset("glami1m", data_dir=str(tmp_path / "data"), root=str(root))
    image = create_image_encoder(f"timm:{save_tiny_image_model(tmp_path / 'vit')}")
    text = create_text_encoder(f"hf:{save_tiny_text_model(tmp_path / 'bert', splits.train['text'].tolist())}")
    live = LiveData(splits, image, text, freeze_layers=-1)
    batch = live.make_encoder()(live.batch("test", torch.arange(4)))
    assert batch["image"].shape == (4, 17, 32) and batch["text"].shape[::2] == (4, 32)
    assert batch["label"].tolist() == live.labels("test")[:4].tolist()
    assert live.size("test") == 10 and live.num_classes == 3


def test_bench_with_the_same_flags_reuses_what_encode_wrote(synth_dir, tmp_path):
    """One vocabulary: the flags of encode are bench's, so bench finds the cache encode filled."""
    shared = [
        "--dataset", "synth", "--data-dir", str(synth_dir), "--data-option", "size=240",
        "--cache-dir", str(tmp_path / "cache"), "--image-tokens", "mean", "--text-tokens", "mean",
    ]  # fmt: skip
    encoded = invoke(*shared)
    assert encoded.exit_code == 0, encoded.output
    assert encoded.output.count(", encoded,") == 3 and str(tmp_path / "cache") in encoded.output
    bench = CliRunner().invoke(
        main,
        ["bench", *shared, "--fusions", "concat_mlp", "--seeds", "0", "--epochs", "1", "--no-unimodal",
         "--out", str(tmp_path / "runs")],
        catch_exceptions=False,
    )  # fmt: skip
    assert bench.exit_code == 0, bench.output
    assert "reusing cached features" in bench.output and "encoding" not in bench.output
