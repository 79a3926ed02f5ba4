"""The one place where the command line turns fusionzoo's errors into messages and exit codes.

Every command is a :class:`Command` (every group a :class:`Group`): a
:class:`~fusionzoo.errors.FusionzooError` raised while parsing the flags or running the command becomes
the click error of its ``exit_code`` (:func:`click_error`): ``Error: <message>`` and exit 1, or for an
:class:`~fusionzoo.errors.InputError` exit 2 (``Invalid value for '<hint>'`` when it names its flag or
argument). No traceback: the message says what is wrong and what to do. Anything else is a bug and keeps
its traceback.

Two context managers mark what the command knows and the error does not:

- :func:`checking_input`: the block only checks the input (nothing has run yet), so whatever it raises,
  a fusionzoo error or a ``ValueError`` (a plugin's constructor refusing a hyperparameter), is an input
  error (exit 2);
- :func:`about`: errors raised in the block are about that flag or argument (``--out``, ``RUNS_DIR``).

Option callbacks that check a value against the registry raise ``click.BadParameter`` themselves, as
click documents for callbacks; everything else goes through here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import click

from fusionzoo.errors import FusionzooError, InputError

__all__ = ["Command", "Group", "about", "checking_input", "click_error"]


def click_error(exc: FusionzooError) -> click.ClickException:
    """The click exception that prints ``exc``'s message and exits with its ``exit_code``."""
    message = str(exc)
    error: click.ClickException
    if exc.exit_code == 2 and exc.param_hint:
        error = click.BadParameter(message, param_hint=exc.param_hint)
    elif exc.exit_code == 2:
        error = click.UsageError(message)
    else:
        error = click.ClickException(message)
    error.exit_code = exc.exit_code
    return error


@contextlib.contextmanager
def checking_input(param_hint: str | None = None) -> Iterator[None]:
    """Errors raised in the block are input errors (exit 2): the block only validates."""
    try:
        yield
    except InputError as exc:
        if param_hint and not exc.param_hint:
            exc.param_hint = param_hint
        raise
    except (FusionzooError, ValueError) as exc:
        raise InputError(str(exc), param_hint=param_hint or getattr(exc, "param_hint", None)) from exc


@contextlib.contextmanager
def about(param_hint: str, *kinds: type[FusionzooError]) -> Iterator[None]:
    """A fusionzoo error (of ``kinds``, default any) raised in the block is about ``param_hint`` (unless
    it names its own)."""
    try:
        yield
    except FusionzooError as exc:
        if kinds and not isinstance(exc, kinds):
            raise
        exc.param_hint = exc.param_hint or param_hint
        raise


class _MapsErrors:
    """Parsing (option callbacks included) and invoking map fusionzoo errors through :func:`click_error`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)  # type: ignore[misc]
        except FusionzooError as exc:
            raise click_error(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except FusionzooError as exc:
            raise click_error(exc) from None


class Command(_MapsErrors, click.Command):
    """A fusionzoo command: its fusionzoo errors become messages and exit codes (:func:`click_error`)."""


class Group(_MapsErrors, click.Group):
    """A fusionzoo command group; its subcommands are :class:`Command` s."""

    command_class = Command
