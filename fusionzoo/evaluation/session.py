"""What ``fusionzoo eval`` (and ``fusionzoo bench --eval``) does: build the protocols, evaluate the runs
of a runs directory (:func:`fusionzoo.evaluation.runner.evaluate_runs`), print the summaries."""

from __future__ import annotations

import math
from typing import Any

from fusionzoo import registry

__all__ = ["DEFAULT_PROTOCOLS", "build_protocols", "print_summaries", "run_eval"]

# the robustness suite of ``--eval robustness`` when [eval] protocols is empty: token protocols only
# (cheap: no re-encoding); raw corruptions are named explicitly (e.g. the robustness preset)
DEFAULT_PROTOCOLS = ("missing_image", "missing_text", "missing_both_random", "feature_noise")


def build_protocols(specs: list[str]) -> list[Any]:
    """One protocol per spec (test-stage ones only); a wrong spec raises ``RegistryError`` before any work.
    A grid without level 0 is evaluated with it (``Protocol.test_levels``; :func:`run_eval` says so)."""
    protocols, seen = [], set()
    for spec in specs:
        protocol = registry.create("protocol", spec)
        if "test" not in protocol.stages:
            raise registry.RegistryError(
                f"protocol '{protocol.registry_name}' is a train-time protocol: use it with "
                f"--train-protocols '{spec}@LEVEL', not as a test protocol"
            )
        if protocol.canonical not in seen:
            seen.add(protocol.canonical)
            protocols.append(protocol)
    return protocols


def run_eval(
    config: Any,
    store: Any,
    console: Any,
    *,
    protocols: list[str] | None = None,
    efficiency: bool | None = None,
    run_ids: set[str] | None = None,
    experiment: Any = None,
) -> Any:
    """Evaluate ``store``'s finished runs with ``protocols`` (default: the config's) and efficiency."""
    import torch

    from fusionzoo.evaluation.runner import evaluate_runs

    specs = list(config.eval.protocols if protocols is None else protocols)
    built = build_protocols(specs)
    reference = check_reference(config.eval.reference)
    for protocol in built:
        if 0.0 not in protocol.levels():
            grid = ";".join(f"{level:g}" for level in protocol.levels())
            console.print(
                f"[yellow]note[/yellow]: {protocol.label}: level 0 (the clean test set) added to "
                f"{protocol.level_option}={grid}; a robustness curve starts at the clean score"
            )
    efficiency = config.eval.efficiency if efficiency is None else efficiency
    if experiment is None:
        from fusionzoo.experiment import Experiment

        experiment = Experiment(config)

    def options_for(dataset: str, fingerprint: str) -> Any:
        return experiment.data_options(dataset)

    device = "cuda" if config.bench.device.startswith("cuda") or (
        config.bench.device == "auto" and torch.cuda.is_available()
    ) else "cpu"  # fmt: skip

    def launcher(tasks: int) -> Any:
        from fusionzoo.launch.select import distributed_world, launcher_for

        if distributed_world() > 1:  # bench --eval under torchrun: each rank in-process, as before
            return registry.create("launcher", "local")
        return launcher_for(config, tasks)

    outcome = evaluate_runs(
        store,
        built,
        efficiency=bool(efficiency),
        device=device,
        threads=config.bench.threads or 1,
        console=console,
        options_for=options_for,
        run_ids=run_ids,
        launcher_for=launcher,
    )
    console.print(
        f"eval: {outcome.rows} robustness rows evaluated, {outcome.reused} reused; efficiency: "
        f"{outcome.efficiency} measured, {outcome.efficiency_reused} reused ({outcome.seconds:.0f} s)"
    )
    for problem in outcome.problems:
        console.print(f"[yellow]not evaluated[/yellow]: {problem}")
    from fusionzoo.evaluation.tables import EvalTables

    EvalTables(store).record_reference(reference)  # the one reference of every summary of this dir
    print_summaries(store, console, run_ids, reference=reference, metric=config.metric)
    return outcome


def check_reference(reference: str) -> str:
    """``[eval] reference`` as a canonical fusion spec; an unknown fusion is a ``RegistryError``."""
    name, options = registry.parse_spec(reference)
    registry.get_entry("fusion", name)  # unknown name -> RegistryError listing the valid ones
    return registry.format_spec(name, options)


def _references(part: Any) -> str:
    labels = sorted({str(v) for v in part["reference_label"] if v})
    return ", ".join(labels) if labels else "none run"


def _fmt(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` decimals, ``-`` for none; never "-0.000" (a value that rounds to zero)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{round(float(value), digits) + 0.0:.{digits}f}"


def print_summaries(
    store: Any,
    console: Any,
    run_ids: set[str] | None = None,
    reference: str | None = None,
    metric: str = "test_accuracy",
) -> None:
    """The robustness summary (relative/effective, raw and normalised) of the robustness metric of
    ``metric`` (``views.robustness_metric``) against ``reference`` (default: the recorded one), and the
    efficiency table."""
    from rich.markup import escape
    from rich.table import Table

    from fusionzoo.evaluation.tables import EvalTables
    from fusionzoo.evaluation.views import robustness_summary
    from fusionzoo.results.versions import pick_versions, versions_note

    runs = store.load()
    if run_ids is not None and len(runs):
        runs = runs[runs["run_id"].astype(str).isin(run_ids)]
    runs, shown, left_out = pick_versions(runs)  # one data version per dataset: never mixed in a summary
    for line in versions_note(shown, left_out, f"fusionzoo report {store.dir}"):
        console.print(f"[yellow]note[/yellow]: {escape(line)}")
    reference = reference or EvalTables(store).reference()
    summary = robustness_summary(store, runs, reference, metric)
    for (dataset, label), part in summary.groupby(["dataset", "label"], sort=False) if len(summary) else []:
        name = str(part["metric"].iloc[0]).removeprefix("test_").replace("_", " ")
        table = Table(
            title=f"robustness · {dataset} · {label} · test {name} (mean over seeds; eff. robust. = mean "
            f"gap per level to {reference} of the same settings: {_references(part)})",
            title_justify="left",
        )
        for col in (
            "fusion",
            "head",
            "train",
            "seeds",
            "clean",
            "rel. robust.",
            "norm.",
            "eff. robust.",
            "norm.",
        ):
            table.add_column(col, justify="left" if col in ("fusion", "head", "train") else "right")
        for _, row in part.sort_values("rel_robust", ascending=False).iterrows():
            table.add_row(
                row["fusion"], row["head"], row["train_protocol"] or "-", str(row["seeds"]), _fmt(row["clean"]),
                _fmt(row["rel_robust"]), _fmt(row["rel_robust_norm"], 2), _fmt(row["eff_robust"]),
                _fmt(row["eff_robust_norm"], 2),
            )  # fmt: skip
        console.print(table)
    efficiency = EvalTables(store).efficiency()
    if len(efficiency):
        if len(runs):
            efficiency = efficiency[efficiency["fusion"].isin(set(runs["fusion"]))]
        table = Table(title="efficiency (one row per configuration and device)", title_justify="left")
        cols = ("fusion", "head", "D", "device", "threads", "params", "GFLOPs fwd", "GFLOPs step",
                "latency p50 ms", "p95 ms", "samples/s", "peak MiB")  # fmt: skip
        for col in cols:
            table.add_column(col, justify="left" if col in ("fusion", "head", "device") else "right")
        for _, row in efficiency.sort_values("gflops_forward").iterrows():
            table.add_row(
                row["fusion"], row["head"], str(row["dim"]), row["device"], str(row["threads"]),
                f"{int(row['params']):,}", f"{row['gflops_forward']:.5f}", f"{row['gflops_train_step']:.4f}",
                f"{row['latency_p50_ms']:.3f}", f"{row['latency_p95_ms']:.3f}", f"{row['throughput']:,.0f}",
                f"{row['peak_memory_mb']:.1f}",
            )  # fmt: skip
        console.print(table)
