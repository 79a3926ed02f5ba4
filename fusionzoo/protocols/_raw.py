"""Shared blocks of the raw-input protocols: seeding global-RNG libraries from a torch generator."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch


def draw_seeds(generator: torch.Generator, count: int) -> list[int]:
    """``count`` 32-bit seeds drawn from ``generator`` (one per item of a raw batch)."""
    return [int(s) for s in torch.randint(0, 2**31 - 1, (count,), generator=generator)]


@contextlib.contextmanager
def seeded_global_rngs(seed: int) -> Iterator[None]:
    """Seed Python's ``random`` and NumPy's legacy global RNG (what imagecorruptions and nlpaug draw
    from) for one item, and restore both states afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def missing_extra(package: str, error: ImportError) -> ValueError:
    return ValueError(
        f"{package} is not installed ({error}); install the robustness extra: "
        "pip install -c constraints.txt -e '.[robustness]'"
    )
