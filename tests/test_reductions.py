"""The token-level cache reductions the size warning offers: the sizes are the estimate scaled by the
pooled image token count and by the truncated mean text length."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fusionzoo.encoders.reductions import image_options, reductions, reductions_text

VIT_B16 = SimpleNamespace(num_tokens=197, num_prefix_tokens=1, token_selection="all", out_dim=768)
MBERT = SimpleNamespace(token_selection="all", max_length=512, out_dim=768)


def test_pooled_grids_halve_and_quarter_the_patch_side():
    assert image_options(197, 1) == [49, 9]  # 14 x 14 patches -> 7 x 7, 3 x 3
    assert image_options(50, 0) == [12, 3]  # not a square grid: P/4, P/16


def test_sizes_scale_with_the_kept_tokens():
    lengths = np.array([10.0, 100.0, 300.0])
    rows = {r["flags"]: r for r in reductions(1000.0, 600.0, lengths, VIT_B16, MBERT)}
    assert rows["(now)"]["total"] == 1600.0
    assert rows["--image-tokens 49"]["image"] == pytest.approx(1000.0 * 49 / 197)
    assert rows["--image-tokens 49"]["text"] == 600.0
    assert rows["--text-max-length 128"]["text"] == pytest.approx(600.0 * (10 + 100 + 128) / 410)
    assert rows["--text-max-length 32"]["text"] == pytest.approx(600.0 * (10 + 32 + 32) / 410)
    both = rows["--image-tokens 49 --text-max-length 32"]
    assert both["total"] == pytest.approx(1000.0 * 49 / 197 + 600.0 * 74 / 410)


def test_nothing_to_offer_for_pooled_caches():
    pooled = SimpleNamespace(num_tokens=1, num_prefix_tokens=1, token_selection="mean", out_dim=768)
    short = SimpleNamespace(token_selection="all", max_length=32, out_dim=768)
    assert reductions_text(1.0, 1.0, np.array([5.0, 9.0]), pooled, short) == ""
    text = reductions_text(1000.0, 600.0, np.array([10.0, 300.0]), VIT_B16, MBERT)
    assert text.startswith("Token-level reductions") and "--image-tokens 9 →" in text
