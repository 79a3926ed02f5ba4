"""Packages that are also the API function of the same name: ``fusionzoo.bench(...)`` and ``fusionzoo.tune(...)``.

``fusionzoo.bench`` and ``fusionzoo.tune`` are packages (the runner, the Optuna study) and, as the Python
API promises, functions. Python lets a module choose its class (``module.__class__ = ...``, the data
model's "customizing module attribute access"), so each of the two packages becomes a module that can be
called: the call runs :func:`fusionzoo.api.bench` / :func:`fusionzoo.api.tune`, imported then by name
(the API sits above these packages; the packages never import it at import time), and
``inspect.signature`` and ``help`` show the function's.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__all__ = ["make_callable"]


class CallablePackage(types.ModuleType):
    """A package whose call is a function named by ``__call_target__`` (``"module:attribute"``)."""

    def _target(self) -> Any:
        module, _, name = self.__dict__["__call_target__"].partition(":")
        return getattr(importlib.import_module(module), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._target()(*args, **kwargs)

    @property
    def __wrapped__(self) -> Any:  # inspect.signature(fusionzoo.bench) is the API function's
        return self._target()


def make_callable(name: str, target: str) -> None:
    """Make the loaded module ``name`` callable as ``target`` (``"fusionzoo.api:bench"``)."""
    module = sys.modules[name]
    module.__dict__["__call_target__"] = target
    module.__class__ = CallablePackage
