"""The ``fusionzoo`` command line: a click group whose subcommands are imported only when used."""

from __future__ import annotations

import importlib
import os

import click

from fusionzoo import __version__
from fusionzoo.cli.errors import Group

# subcommand name -> "module:attribute"; heavy modules (torch, timm) load only for the command run
LAZY_COMMANDS = {
    "list": "fusionzoo.cli.list:list_cmd",
    "data": "fusionzoo.cli.data:data",
    "encode": "fusionzoo.cli.encode:encode",
    "bench": "fusionzoo.cli.bench:bench",
    "tune": "fusionzoo.cli.tune:tune",
    "report": "fusionzoo.cli.report:report",
    "eval": "fusionzoo.cli.eval:eval_cmd",
}


class LazyGroup(Group):
    """A group that imports each subcommand's module on first use (errors: :mod:`fusionzoo.cli.errors`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | {n for n in LAZY_COMMANDS if self._available(n)})

    @staticmethod
    def _available(name: str) -> bool:
        module = LAZY_COMMANDS[name].split(":")[0]
        return importlib.util.find_spec(module) is not None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and self._available(cmd_name):
            module, attr = LAZY_COMMANDS[cmd_name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}
)
@click.version_option(__version__, prog_name="fusionzoo")
def main() -> None:
    """Benchmark interchangeable multimodal (image + text) fusion modules and heads."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
