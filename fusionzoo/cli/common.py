"""Options and parameter types shared by every ``fusionzoo`` subcommand."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

from fusionzoo import registry


def _load_plugins(ctx: click.Context, param: click.Parameter, value: Sequence[str]) -> tuple[str, ...]:
    for target in value:
        try:
            registry.load_plugin(target)
        except registry.RegistryError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc
    return tuple(value)


def plugin_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--plugin MODULE_OR_PATH`` (repeatable): import a local plugin before anything else runs."""
    return click.option(
        "--plugin",
        "plugins",
        multiple=True,
        metavar="MODULE|FILE.py",
        is_eager=True,
        expose_value=True,
        callback=_load_plugins,
        help="Import a plugin module or .py file that registers plugins of any kind (repeatable).",
    )(func)


class CommaList(click.ParamType):
    """A comma-separated list; with ``convert_item`` each item is converted (and may fail)."""

    name = "list"

    def __init__(self, convert_item: Callable[[str], Any] | None = None, what: str = "value") -> None:
        self.convert_item = convert_item
        self.what = what

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[Any]:
        if isinstance(value, list | tuple):
            return list(value)
        items = [item.strip() for item in str(value).split(",") if item.strip()]
        if not items:
            self.fail(f"expected a comma-separated list of {self.what}s, got {value!r}", param, ctx)
        if self.convert_item is None:
            return items
        out, bad = [], []
        for item in items:
            try:
                out.append(self.convert_item(item))
            except (ValueError, registry.RegistryError) as exc:
                bad.append(f"{item!r} ({exc})" if str(exc) else repr(item))
        if bad:
            self.fail(f"invalid {self.what}: {'; '.join(bad)}", param, ctx)
        return out


class IntList(CommaList):
    """Comma-separated integers, e.g. ``--seeds 0,1,2``."""

    def __init__(self) -> None:
        super().__init__(self._to_int, "integer")

    @staticmethod
    def _to_int(item: str) -> int:
        try:
            return int(item)
        except ValueError:
            raise ValueError("not an integer") from None


class FloatList(CommaList):
    """Comma-separated numbers, e.g. ``--train-fractions 0.1,0.3,1``."""

    def __init__(self) -> None:
        super().__init__(self._to_float, "number")

    @staticmethod
    def _to_float(item: str) -> float:
        try:
            return float(item)
        except ValueError:
            raise ValueError("not a number") from None


class PluginSpecList(CommaList):
    """Comma-separated plugin specs of one kind; unknown names fail with the valid names listed.

    Specs may carry hyperparameters separated by ``;`` inside a list is not needed: use one
    ``name:k=v,k=v`` spec per flag use, or separate specs with ``+`` when hyperparameters contain commas.
    """

    def __init__(self, kind: str) -> None:
        super().__init__(None, f"{kind} spec")
        self.kind = kind

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[str]:
        if isinstance(value, list | tuple):
            return list(value)
        specs = split_specs(str(value))
        if not specs:
            self.fail(f"expected a comma-separated list of {self.kind}s, got {value!r}", param, ctx)
        problems = []
        for spec in specs:
            # "fusion@head" pins a head for that fusion (the presets accept it; so does the command line)
            parts = [(self.kind, spec)]
            if self.kind == "fusion" and "@" in spec:
                fusion, _, head = spec.partition("@")
                parts = [("fusion", fusion), ("head", head)]
            for kind, part in parts:
                try:
                    name, _ = registry.parse_spec(part)
                    registry.get_entry(kind, name)
                except registry.RegistryError as exc:  # names the close matches and the registered ones
                    problems.append(str(exc))
        if problems:
            self.fail("\n".join(problems), param, ctx)
        return specs


class TrainProtocolList(click.ParamType):
    """Comma-separated train-time protocols ``SPEC@LEVEL`` or ``SPEC`` (expanded to its levels)."""

    name = "train protocols"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[str]:
        if isinstance(value, list | tuple):
            return list(value)
        from fusionzoo.protocols._train_time import expand_train_protocols

        items = split_specs(str(value))
        try:
            expand_train_protocols(items)
        except (ValueError, registry.RegistryError) as exc:
            self.fail(str(exc), param, ctx)
        return items


def split_specs(text: str) -> list[str]:
    """Split ``"fluid:gating=false,queries=16,film,concat_mlp"`` into specs.

    A comma starts a new spec unless the next item looks like ``key=value`` (then it belongs to the
    previous spec's hyperparameters). ``+`` always separates specs.
    """
    specs: list[str] = []
    for chunk in text.split("+"):
        for item in (part.strip() for part in chunk.split(",")):
            if not item:
                continue
            if "=" in item and ":" not in item.split("=")[0] and specs and ":" in specs[-1]:
                specs[-1] += "," + item
            else:
                specs.append(item)
    return specs
