"""``fusionzoo list [KIND] [PATTERN]``: every registry as a rich table.

One table per kind (``fusions``, ``heads``, ``datasets``, ``metrics``, ``protocols``, ``reporters``,
``launchers``; ``all`` = every kind): name, the kind's key facts, source (``built-in``, a distribution,
or ``local:<file>``) and description. PATTERN is an fnmatch wildcard on the name. A plugin that cannot
be built, or an entry point that failed to import, is a row with its error; the rest still list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fusionzoo import registry
from fusionzoo.cli.common import plugin_option
from fusionzoo.cli.errors import Command

LIST_DIM = 256
LIST_CLASSES = 191  # GLAMI-1M


def _params(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def describe_fusion(name: str) -> dict[str, object]:
    """Kind, output token count and parameter count of fusion ``name`` built at ``D=256``."""
    import torch

    entry = registry.get_entry("fusion", name)
    module = registry.create_fusion(name, LIST_DIM)
    module.eval()
    with torch.no_grad():
        out = module(torch.randn(2, 5, LIST_DIM), torch.randn(2, 7, LIST_DIM))
    return {
        "name": name,
        "kind": getattr(module, "kind", "?"),
        "tokens": out.tokens.shape[1],
        "params": _params(module),
        "description": entry.description,
        "source": entry.source,
    }


def describe_head(name: str) -> dict[str, object]:
    """Parameter count of head ``name`` built at ``D=256`` for 191 classes."""
    entry = registry.get_entry("head", name)
    module = registry.create_head(name, LIST_DIM, LIST_CLASSES)
    return {
        "name": name,
        "kind": "head",
        "tokens": "-",
        "params": _params(module),
        "description": entry.description,
        "source": entry.source,
    }


def _fmt_params(n: object) -> str:
    return (
        f"{n / 1e6:.2f}M" if isinstance(n, int) and n >= 1e5 else f"{n:,}" if isinstance(n, int) else str(n)
    )


def _module_facts(describe: Callable[[str], dict[str, object]]) -> Callable[[str], tuple[str, ...]]:
    def facts(name: str) -> tuple[str, ...]:
        row = describe(name)
        return str(row["kind"]), str(row["tokens"]), _fmt_params(row["params"])

    return facts


def dataset_facts(name: str) -> tuple[str, ...]:
    """Own options, default encoders and the demo flag of dataset backend ``name``."""
    backend = registry.create("dataset", name)
    specs = backend.default_encoder_specs()
    encoders = " + ".join(specs) if specs else "built locally (no download)"
    return ", ".join(backend.option_names()) or "-", encoders, "yes" if backend.demo else "no"


def metric_facts(name: str) -> tuple[str, ...]:
    """Result columns (``test_``/``val_`` prefixed in the results) and direction of metric ``name``."""
    metric = registry.create("metric", name)
    return ", ".join(metric.output_columns()), str(metric.direction)


def protocol_facts(name: str) -> tuple[str, ...]:
    """Stage (test/train) and levels of protocol ``name`` at its defaults."""
    protocol = registry.create("protocol", name)
    levels = ", ".join(f"{float(level):g}" for level in protocol.levels())
    return str(protocol.stage) + (" (raw inputs)" if getattr(protocol, "needs_raw", False) else ""), levels


def reporter_facts(name: str) -> tuple[str, ...]:
    """The output formats reporter ``name`` renders."""
    return (", ".join(registry.create("reporter", name).formats),)


def launcher_facts(name: str) -> tuple[str, ...]:
    """Launchers are described by their description alone (built to check they construct)."""
    registry.create("launcher", name)
    return ()


@dataclass(frozen=True)
class Listing:
    """How one kind is listed: its fact columns and the function computing them for a name."""

    kind: str
    columns: tuple[str, ...]
    facts: Callable[[str], tuple[str, ...]]
    wide: tuple[str, ...] = ()  # fact columns that may wrap


LISTINGS: dict[str, Listing] = {
    "fusions": Listing(
        "fusion", ("kind", "out tokens", f"params (D={LIST_DIM})"), _module_facts(describe_fusion)
    ),
    "heads": Listing(
        "head",
        ("kind", "out tokens", f"params (D={LIST_DIM}, C={LIST_CLASSES})"),
        _module_facts(describe_head),
    ),
    "datasets": Listing(
        "dataset",
        ("options", "default encoders", "demo"),
        dataset_facts,
        wide=("options", "default encoders"),
    ),
    "metrics": Listing("metric", ("columns", "direction"), metric_facts, wide=("columns",)),
    "protocols": Listing("protocol", ("stage", "levels"), protocol_facts, wide=("levels",)),
    "reporters": Listing("reporter", ("formats",), reporter_facts),
    "launchers": Listing("launcher", (), launcher_facts),
}


def listing_table(what: str, pattern: str = "*") -> Table:
    """The table of kind ``what`` (a key of :data:`LISTINGS`) for the names matching ``pattern``."""
    listing = LISTINGS[what]
    reg = registry.registry_of(listing.kind)
    names = reg.list(pattern)
    failures = {n: f for n, f in reg.failures(pattern).items() if n not in names}
    table = Table(title=f"{what} ({len(names) + len(failures)})", title_justify="left")
    table.add_column("name", no_wrap=True)
    for column in listing.columns:
        table.add_column(
            column, no_wrap=column not in listing.wide, ratio=1 if column in listing.wide else None
        )
    table.add_column("source", no_wrap=True)
    table.add_column("description", ratio=1, min_width=24)
    blank = ("-",) * max(0, len(listing.columns) - 1)
    error_facts = ("error", *blank) if listing.columns else ()
    for name in names:
        source = reg.get(name).source
        try:
            facts = tuple(escape(str(f)) for f in listing.facts(name))
            description = escape(reg.get(name).description)
        except Exception as exc:  # a broken plugin is reported in its row, the rest still list
            facts, description = error_facts, f"[red]{escape(f'{type(exc).__name__}: {exc}')}[/red]"
        table.add_row(name, *facts, escape(source), description)
    for name, failure in failures.items():
        message = f"failed to import: {failure.error}"
        table.add_row(name, *error_facts, escape(failure.source), f"[red]{escape(message)}[/red]")
    return table


@click.command("list", cls=Command)
@click.argument("what", type=click.Choice([*LISTINGS, "all"]), default="all")
@click.argument("pattern", default="*")
@plugin_option
def list_cmd(what: str, pattern: str, plugins: tuple[str, ...]) -> None:
    """List the registered plugins of one kind (or all) whose name matches PATTERN (fnmatch wildcards).

    \b
    Examples:
      fusionzoo list fusions '*attn*'
      fusionzoo list datasets
      fusionzoo list metrics 'acc*' --plugin ./my_metric.py
    """
    console = Console()
    if not console.is_terminal:  # pipes and logs: wide enough for one line per plugin
        console = Console(width=200)
    kinds = list(LISTINGS) if what == "all" else [what]
    if "fusions" in kinds or "heads" in kinds:
        import torch

        torch.manual_seed(0)  # parameter counts do not depend on it, but the probe inputs do
    for kind in kinds:
        console.print(listing_table(kind, pattern))
