"""Built-in metrics: every module in this package registers one on import (one metric per file).

A metric (:class:`fusionzoo.metrics.base.Metric`) declares its name, direction and the result columns
it writes, and computes them from an :class:`~fusionzoo.metrics.base.EvalContext` (labels, scores,
per-sample metadata). The trainer evaluates every registered metric, the tuner offers each column as an
objective and the leaderboard ranks by any of them.
"""

import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
