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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "collect_provenance", "git_state"]

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


def _machine() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "hostname": platform.node(),
        "processor": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
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
    from fusionzoo import __version__

    argv = list(sys.argv if argv is None else argv)
    program = Path(argv[0]).name if argv else "fusionzoo"
    if argv and Path(argv[0]).parts[-2:] == ("fusionzoo", "cli.py"):
        program = "python -m fusionzoo.cli"
    command = " ".join([program, *(shlex.quote(a) for a in argv[1:])])
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
    environment = {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)}
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
        "config": json.dumps(config.to_toml_dict(), default=str),
        "run_ids": json.dumps(run_ids),
    }
