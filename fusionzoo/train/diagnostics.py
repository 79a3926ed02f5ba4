"""Summaries of a model's ``extras`` (diagnostics that never enter the loss) over one evaluation pass.

The final test evaluation of every run feeds each batch's :attr:`ModelOutput.extras
<fusionzoo.train.model.ModelOutput>` (``fusion.<key>`` / ``head.<key>``) to an :class:`ExtrasSummary`;
the rows it returns go to ``diagnostics.parquet`` (one row per run, name and bin):

- an extra whose key ends in ``counts`` (e.g. the MoE head's ``expert_counts``, a ``(E,)`` count of
  the experts chosen in the batch) is summed over batches elementwise: ``kind="counts"``, ``bin`` = the
  position, ``value`` = the total count;
- a floating-point extra whose values all lie in [0, 1] (gates, routing probabilities: FLUID's
  ``gate``) becomes a histogram of every element over :data:`BINS` equal bins of [0, 1]:
  ``kind="histogram"``, ``edge_low``/``edge_high`` the bin edges, ``value`` the number of elements;
- any other extra (values outside [0, 1], integers not named ``*counts``) is not summarised, and a
  key that once falls outside [0, 1] is dropped for the whole pass (a partial histogram would
  misrepresent it).

Collecting only reads tensors the model already returns, so it changes no metric.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["BINS", "ExtrasSummary"]

BINS = 20


class ExtrasSummary:
    """Accumulates :meth:`add` (one batch's extras) and returns diagnostics rows with :meth:`rows`."""

    def __init__(self, bins: int = BINS) -> None:
        self.bins = bins
        self.counts: dict[str, Tensor] = {}
        self.histograms: dict[str, Tensor] = {}
        self.dropped: set[str] = set()

    def add(self, extras: dict[str, Tensor]) -> None:
        for name, value in extras.items():
            if not isinstance(value, Tensor) or name in self.dropped or value.numel() == 0:
                continue
            value = value.detach()
            if name.endswith("counts"):
                flat = value.reshape(-1).to("cpu", torch.float64)
                total = self.counts.get(name)
                if total is not None and total.shape != flat.shape:
                    self._drop(name)
                    continue
                self.counts[name] = flat if total is None else total + flat
            elif value.is_floating_point():
                flat = value.reshape(-1).float()
                flat = flat[torch.isfinite(flat)]
                if len(flat) and (float(flat.min()) < 0.0 or float(flat.max()) > 1.0):
                    self._drop(name)
                    continue
                hist = torch.histc(flat, bins=self.bins, min=0.0, max=1.0).to("cpu", torch.float64)
                self.histograms[name] = hist + self.histograms.get(name, 0.0)

    def _drop(self, name: str) -> None:
        self.dropped.add(name)
        self.counts.pop(name, None)
        self.histograms.pop(name, None)

    def rows(self) -> list[dict[str, Any]]:
        """``{name, kind, bin, edge_low, edge_high, value}`` rows (edges NaN for counts)."""
        out: list[dict[str, Any]] = []
        nan = float("nan")
        for name, total in sorted(self.counts.items()):
            out.extend(
                {
                    "name": name,
                    "kind": "counts",
                    "bin": i,
                    "edge_low": nan,
                    "edge_high": nan,
                    "value": float(v),
                }
                for i, v in enumerate(total.tolist())
            )
        width = 1.0 / self.bins
        for name, hist in sorted(self.histograms.items()):
            out.extend(
                {
                    "name": name,
                    "kind": "histogram",
                    "bin": i,
                    "edge_low": i * width,
                    "edge_high": (i + 1) * width,
                    "value": float(v),
                }
                for i, v in enumerate(hist.tolist())
            )
        return out
