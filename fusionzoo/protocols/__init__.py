"""Built-in evaluation protocols (perturbations of the test or training data): one per module.

A protocol (:class:`fusionzoo.protocols.base.Protocol`) is registered like a fusion and chosen by spec
string (``missing_image:rates=0;0.5;1``); third-party protocols register through the
``fusionzoo.protocols`` entry points.
"""

import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
