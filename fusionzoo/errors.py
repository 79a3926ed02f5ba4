"""The root of every error fusionzoo raises on purpose, and the exit code each kind means.

    FusionzooError        exit 1: the command could not do its work (a run, a download, a cache, a disk)
    └─ InputError         exit 2: what the user gave is wrong (a flag, a preset key, a plugin spec, a
                          file or folder named on the command line); nothing has been done yet

Every exception class of the package derives from one of the two (and keeps its older builtin base,
e.g. ``ValueError``, so ``except ValueError`` still catches it). A subclass may override ``exit_code``.
``param_hint`` names the flag or argument the message is about (``--out``, ``RUNS_DIR``); the command
line prints ``Invalid value for '<hint>'`` then. The command line turns these errors into messages and
exit codes in one place (:func:`fusionzoo.cli.errors.click_error`); library users catch
``FusionzooError``.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["FusionzooError", "InputError"]


class FusionzooError(Exception):
    """An error fusionzoo raises on purpose: its message says what went wrong and what to do."""

    exit_code: ClassVar[int] = 1

    def __init__(self, *args: object, param_hint: str | None = None) -> None:
        super().__init__(*args)
        self.param_hint = param_hint


class InputError(FusionzooError):
    """The input of a command is wrong (exit code 2, like a click usage error): nothing ran yet."""

    exit_code: ClassVar[int] = 2
