"""Built-in reporters (outputs of a results table): every module in this package registers one.

A reporter (:class:`fusionzoo.report.base.Reporter`) turns a :class:`~fusionzoo.report.base.ResultsView`
(the tidy tables of a runs directory, filtered to what one command ran) into output for a person: the
terminal leaderboard, a report section, a paper table. Third-party reporters register through the
``fusionzoo.reporters`` entry points.
"""

import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
