"""What a bench invocation ran with: one ``provenance.parquet`` row, written before training starts.

invocation    16 hex digits (start time, process id, command)
started_at    UTC ISO time
command       the command line (shell-quoted argv)
cwd           the working directory
fusionzoo_version, git_commit, git_dirty   the code (the commit of the checkout fusionzoo runs from,
                                           "" when it is not a git checkout)
python, platform, machine (JSON: hostname, processor, cores, torch threads, CUDA devices)
packages      JSON {distribution: version} of the libraries results depend on
environment   JSON of the variables that change behaviour (FUSIONZOO_*, OMP_*, MKL_*, CUDA_*,
              HF_*/TRANSFORMERS_* offline flags, PYTHONHASHSEED); nothing else is recorded
datasets      JSON {dataset: {fingerprint, image_encoder, text_encoder}} (encoder identities:
              spec, weights, preprocessing, token selection)
config        JSON of the experiment config (every preset table, defaults included)
run_ids       JSON list of the run ids of the invocation's grid

Every URL in the command line, the config and the environment (``--mlflow postgresql://user:pw@host``,
``--storage``, ``--ray-address``) is stored with its password masked (:func:`mask_urls`, which applies
:func:`fusionzoo.endpoints.mask_url` to each), so neither the table nor the report leaks it.

``machine`` records what makes CPU numbers reproducible or not: the CPU model (``/proc/cpuinfo``'s
``model name``, else the platform's processor string), the instruction set torch's CPU kernels
dispatch to (``torch.backends.cpu.get_cpu_capability()``, e.g. ``AVX2``, ``AVX512``), the cores,
torch's intra-op threads and its BLAS/OpenMP build (``torch.__config__.parallel_info``'s backend line).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from fusionzoo import __version__

__all__ = ["PACKAGES", "collect_provenance", "cpu_model", "git_state", "mask_urls"]

PACKAGES = (
    "torch",
    "torchvision",
    "timm",
    "transformers",
    "tokenizers",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "scikit-learn",
    "optuna",
    "pydantic",
    "plotly",
    "matplotlib",
)
ENV_PREFIXES = (
    "FUSIONZOO_",
    "OMP_",
    "MKL_",
    "CUDA_",
    "CUBLAS_",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "PYTHONHASHSEED",
)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ""


def git_state(path: str | Path | None = None) -> tuple[str, bool]:
    """(commit, has uncommitted changes) of the git checkout holding ``path`` (default: fusionzoo's
    source); ``("", False)`` when it is not one or git is missing."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return "", False
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return commit.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return "", False


URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"]+")


def mask_urls(text: str) -> str:
    """``text`` with the password of every URL in it masked (``scheme://user:***@host``)."""
    from fusionzoo.endpoints import mask_url

    return URL.sub(lambda m: mask_url(m.group(0)), text)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``/machine)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _machine() -> dict[str, Any]:
    import torch

    parallel = torch.__config__.parallel_info().splitlines()
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "parallel_backend": next((line.strip() for line in parallel if line.startswith("ATen parallel")), ""),
        "blas": next((line.strip() for line in parallel if "BLAS" in line or "Math Kernel" in line), ""),
    }
    if torch.cuda.is_available():
        info["cuda"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def _identity(encoder: Any) -> Any:
    identity = getattr(encoder, "identity", None)
    return identity() if callable(identity) else str(encoder)


def collect_provenance(
    config: Any, inputs: dict[str, Any], run_ids: list[str], argv: list[str] | None = None
) -> dict[str, Any]:
    """The provenance row of one bench invocation (see the module docstring); ``inputs`` maps each
    dataset to its :class:`~fusionzoo.prepare.ResolvedInputs`."""
    argv = list(sys.argv if argv is None else argv)
    program = Path(argv[0]).name if argv else "fusionzoo"
    if argv and Path(argv[0]).parts[-2:] == ("fusionzoo", "cli.py"):
        program = "python -m fusionzoo.cli"
    command = mask_urls(" ".join([program, *(shlex.quote(a) for a in argv[1:])]))
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    commit, dirty = git_state()
    datasets = {
        name: {
            "fingerprint": resolved.fingerprint,
            "image_encoder": _identity(resolved.image_encoder),
            "text_encoder": _identity(resolved.text_encoder),
        }
        for name, resolved in inputs.items()
    }
    environment = {k: mask_urls(v) for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)}
    invocation = hashlib.sha256(f"{started} {os.getpid()} {command}".encode()).hexdigest()[:16]
    return {
        "invocation": invocation,
        "started_at": started,
        "command": command,
        "cwd": os.getcwd(),
        "fusionzoo_version": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": json.dumps(_machine()),
        "packages": json.dumps({p: _version(p) for p in PACKAGES if _version(p)}),
        "environment": json.dumps(environment),
        "datasets": json.dumps(datasets, default=str),
        "config": mask_urls(json.dumps(config.to_toml_dict(), default=str)),
        "run_ids": json.dumps(run_ids),
    }
