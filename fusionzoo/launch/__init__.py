"""Built-in launchers (where runs execute): every module in this package registers one on import.

A launcher (:class:`fusionzoo.launch.base.Launcher`) runs a list of :class:`~fusionzoo.launch.base.RunTask`
and hands each finished :class:`~fusionzoo.launch.base.RunRecord` back to the driver, which alone writes
the results table; third-party launchers register through the ``fusionzoo.launchers`` entry points.
"""

import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
