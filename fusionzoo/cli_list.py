"""``fusionzoo list [fusions|heads] [PATTERN]``: the registry as a rich table."""

from __future__ import annotations

import click
import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fusionzoo import registry
from fusionzoo.cli_common import plugin_option

LIST_DIM = 256
LIST_CLASSES = 191  # GLAMI-1M


def describe_fusion(name: str) -> dict[str, object]:
    """Kind, output token count and parameter count of fusion ``name`` built at ``D=256``."""
    entry = registry.get_entry("fusion", name)
    module = registry.create_fusion(name, LIST_DIM)
    module.eval()
    with torch.no_grad():
        out = module(torch.randn(2, 5, LIST_DIM), torch.randn(2, 7, LIST_DIM))
    return {
        "name": name,
        "kind": getattr(module, "kind", "?"),
        "tokens": out.tokens.shape[1],
        "params": sum(p.numel() for p in module.parameters()),
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
        "params": sum(p.numel() for p in module.parameters()),
        "description": entry.description,
        "source": entry.source,
    }


def _fmt_params(n: object) -> str:
    return (
        f"{n / 1e6:.2f}M" if isinstance(n, int) and n >= 1e5 else f"{n:,}" if isinstance(n, int) else str(n)
    )


@click.command("list")
@click.argument("what", type=click.Choice(["fusions", "heads", "all"]), default="all")
@click.argument("pattern", default="*")
@plugin_option
def list_cmd(what: str, pattern: str, plugins: tuple[str, ...]) -> None:
    """List registered fusions and/or heads whose name matches PATTERN (fnmatch wildcards)."""
    torch.manual_seed(0)
    console = Console()
    if not console.is_terminal:  # pipes and logs: wide enough for one line per plugin
        console = Console(width=200)
    kinds = ["fusions", "heads"] if what == "all" else [what]
    for kind in kinds:
        names = registry.list_fusions(pattern) if kind == "fusions" else registry.list_heads(pattern)
        describe = describe_fusion if kind == "fusions" else describe_head
        extra = f"D={LIST_DIM}" if kind == "fusions" else f"D={LIST_DIM}, C={LIST_CLASSES}"
        table = Table(title=f"{kind} ({len(names)})", title_justify="left")
        for col in ("name", "kind", "out tokens", f"params ({extra})", "source"):
            table.add_column(col, no_wrap=True)
        table.add_column("description", ratio=1, min_width=24)
        for name in names:
            try:
                row = describe(name)
            except Exception as exc:  # a broken plugin is reported in its row, the rest still list
                row = {
                    "name": name,
                    "kind": "error",
                    "tokens": "-",
                    "params": "-",
                    "description": f"[red]{escape(f'{type(exc).__name__}: {exc}')}[/red]",
                    "source": registry.get_entry(kind[:-1], name).source,
                }
            table.add_row(
                str(row["name"]),
                str(row["kind"]),
                str(row["tokens"]),
                _fmt_params(row["params"]),
                escape(str(row["source"])),
                escape(str(row["description"])) if row["kind"] != "error" else str(row["description"]),
            )
        console.print(table)
