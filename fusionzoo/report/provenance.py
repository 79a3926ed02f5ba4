"""Provenance: what produced these numbers — code, packages, data, encoders, machine, command lines.

From ``provenance.parquet`` (one row per ``fusionzoo bench`` invocation, written before it trains:
:mod:`fusionzoo.results.provenance`), restricted to the invocations whose grid holds one of the shown
runs: each command line with its time, fusionzoo version and git commit; the package versions, the
machine (CPU model, the instruction set torch dispatches to, threads, BLAS) and the behaviour-changing
environment variables of the latest one (with the values that differ between invocations); each
dataset's fingerprint and encoder identities. URLs show with their password masked (also in rows
written before provenance masked them). Without the table,
the runs table's own columns (fusionzoo version, data fingerprints, training semantics) are shown.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from fusionzoo.report.base import Reporter, ResultsView, Section, Table, Text, register_reporter
from fusionzoo.results.provenance import mask_urls

__all__ = ["Provenance"]


def _json(value: Any) -> Any:
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return value


def _short(value: Any, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _brief(identity: Any) -> str:
    if not isinstance(identity, dict):
        return str(identity)
    keys = ("spec", "weights", "pretrained", "tokens", "image_tokens", "text_tokens", "max_length")
    parts = [f"{k}={_short(identity[k])}" for k in keys if k in identity]
    rest = len(identity) - len(parts)
    return ", ".join(parts) + (f" (+{rest} more fields)" if rest > 0 else "")


@register_reporter
class Provenance(Reporter):
    """Commands, versions, data fingerprints, encoders and machine of the shown runs (module docstring)."""

    name = "provenance"
    title = "Provenance"
    description = (
        "fusionzoo version and git commit, packages, dataset fingerprints, encoders, machine, commands"
    )
    formats = ("section",)
    order = 130

    def render(self, view: ResultsView, fmt: str = "section", **_: Any) -> Section:
        runs = view.runs
        if not len(runs):
            return Section.absent(self, "no runs")
        blocks: list[Any] = []
        table = view.table("provenance")
        shown = set(runs["run_id"].astype(str))
        if table is not None and len(table):
            table = table[[bool(shown & set(_json(r) or [])) for r in table["run_ids"]]].sort_values(
                "started_at"
            )
        if table is None or not len(table):
            blocks.append(
                Text(
                    "No provenance.parquet rows for these runs (fusionzoo bench records one per invocation); "
                    "from the runs table:"
                )
            )
        else:
            blocks.extend(self._invocations(table))
        data = (
            runs.groupby(["dataset", "data_fingerprint"], sort=False)
            .agg(
                runs=("run_id", "count"),
                semantics=("semantics", "first"),
                fusionzoo=("fusionzoo_version", "unique"),
            )
            .reset_index()
        )
        data["fusionzoo"] = data["fusionzoo"].map(lambda v: ", ".join(sorted(map(str, v))))
        data["runs"] = data["runs"].astype(str)
        blocks.append(Table(data, caption="data fingerprints of the runs (files, options, limit, encoders)"))
        return Section.of(self, *blocks)

    @staticmethod
    def _invocations(table: pd.DataFrame) -> list[Any]:
        commands = pd.DataFrame(
            {
                "started (UTC)": table["started_at"],
                "command": table["command"].astype(str).map(mask_urls),  # rows written before masking
                "fusionzoo": table["fusionzoo_version"],
                "git commit": [
                    (c[:10] + (" + local changes" if d else "")) if c else "-"
                    for c, d in zip(table["git_commit"], table["git_dirty"], strict=True)
                ],
                "runs": [str(len(_json(r) or [])) for r in table["run_ids"]],
                "cwd": table["cwd"],
            }
        )
        latest = table.iloc[-1]
        packages = {k: _json(latest["packages"]).get(k, "") for k in _json(latest["packages"])}
        differ = {k for k in packages if len({_json(p).get(k, "") for p in table["packages"]}) > 1}
        versions = pd.DataFrame(
            {
                "package": list(packages),
                "version (latest invocation)": list(packages.values()),
                "differs between invocations": ["yes" if k in differ else "" for k in packages],
            }
        )
        machine = {**_json(latest["machine"]), "python": latest["python"], "platform": latest["platform"]}
        machine.update({f"env {k}": v for k, v in _json(latest["environment"]).items()})
        machine_frame = pd.DataFrame(
            {"key": list(machine), "value": [mask_urls(str(v)) for v in machine.values()]}
        )
        datasets = []
        for _, row in table.iterrows():
            for name, info in (_json(row["datasets"]) or {}).items():
                datasets.append(
                    {
                        "dataset": name,
                        "fingerprint": info.get("fingerprint", ""),
                        "image encoder": _brief(info.get("image_encoder")),
                        "text encoder": _brief(info.get("text_encoder")),
                    }
                )
        encoders = pd.DataFrame(datasets).drop_duplicates() if datasets else pd.DataFrame()
        blocks: list[Any] = [Table(commands, caption="bench invocations that ran or reused these runs")]
        if len(encoders):
            blocks.append(Table(encoders, caption="datasets: data fingerprint and encoder identities"))
        blocks.append(Table(versions, caption="package versions"))
        blocks.append(
            Table(machine_frame, caption="machine and behaviour-changing environment (latest invocation)")
        )
        return blocks
