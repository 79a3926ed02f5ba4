"""The launcher contract: :func:`check_launcher`.

    from fusionzoo.testing import check_launcher
    check_launcher("local")             # a registered name/spec, a Launcher subclass, or an instance

The launcher runs three tiny :class:`~fusionzoo.launch.base.RunTask` s (``concat_mlp`` + ``linear`` at
``D = 8``, 2 epochs on 48 rows of synthetic token features, seeds 0 and 1, and one run whose data
fails on its first batch) and reports to a recording driver. Rules:

- every task's record reaches ``driver.finished`` exactly once (none missing, none twice, none that
  was not asked for), carrying its task's spec;
- a run that raises is a ``failed`` record, not an exception out of ``run`` (failure isolation);
- the records equal those of the local launcher (:func:`~fusionzoo.launch.base.execute_run` in this
  process, one after the other): same status, same metric values, same test predictions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fusionzoo.testing._plugins import build_plugin
from fusionzoo.testing.contracts import ContractError

__all__ = ["FailingData", "check_launcher", "example_tasks"]

GOOD, FAILING = "example", "example-failing"


class FailingData:
    """Training data whose batches raise: the run that trains on it must be recorded ``failed``."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def __getattr__(self, name: str) -> Any:
        if name == "data" or name.startswith("__"):  # not set yet (unpickling in a worker process)
            raise AttributeError(name)
        return getattr(self.data, name)

    def batch(self, split: str, indices: Any) -> Any:
        raise RuntimeError("this example dataset fails on purpose (launcher contract: failure isolation)")


def example_tasks() -> tuple[list[Any], dict[str, Any]]:
    """The three tasks and ``{dataset name: training data}`` of the launcher contract."""
    from fusionzoo.experiment import RunSpec
    from fusionzoo.launch.base import RunTask
    from fusionzoo.testing.token_features import synthetic_features
    from fusionzoo.train.config import RunConfig

    data = synthetic_features(48, 16, 16, num_classes=3, image_tokens=2, image_dim=8, text_dim=8, max_text=3)
    base = RunConfig(
        fusion="concat_mlp", head="linear", dim=8, epochs=2, batch_size=16, patience=0, device="cpu"
    )
    specs = [RunSpec.create(GOOD, base.replace(seed=s), "example") for s in (0, 1)]
    specs.append(RunSpec.create(FAILING, base, "example"))
    return [RunTask(spec, None) for spec in specs], {GOOD: data, FAILING: FailingData(data)}


@dataclass
class RecordingDriver:
    """A driver that keeps every record and counts progress events."""

    records: list[Any] = field(default_factory=list)
    events: int = 0

    def progress(self, task: Any, event: dict[str, Any]) -> None:
        self.events += 1

    def finished(self, record: Any) -> None:
        self.records.append(record)


def _reference(tasks: list[Any], data_for: Callable[[str], Any]) -> dict[str, Any]:
    from fusionzoo.launch.base import execute_run

    return {t.spec.run_id: execute_run(t, data_for(t.spec.dataset)) for t in tasks}


def _metrics(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items() if k.startswith(("test_", "val_"))}


def check_launcher(target: Any, **hp: Any) -> None:
    """Validate a launcher plugin (see the module docstring); ``hp``: constructor keyword arguments."""
    import numpy as np

    from fusionzoo.launch.base import Launcher

    launcher, name = build_plugin("launcher", target, Launcher, hp)
    tasks, data = example_tasks()
    data_for = data.__getitem__
    driver = RecordingDriver()
    try:
        launcher.run(list(tasks), data_for, driver)
    except Exception as exc:
        raise ContractError(
            name, "a failing run is a failed record", f"run() raised {type(exc).__name__}: {exc}"
        ) from exc
    wanted = {t.spec.run_id: t for t in tasks}
    counts: dict[str, int] = {}
    for record in driver.records:
        run_id = getattr(getattr(record, "spec", None), "run_id", None)
        if run_id not in wanted:
            raise ContractError(
                name, "reports every record exactly once", f"a record for unknown run {run_id!r}"
            )
        counts[run_id] = counts.get(run_id, 0) + 1
    missing = [wanted[r].spec.label for r in wanted if r not in counts]
    twice = [wanted[r].spec.label for r, n in counts.items() if n > 1]
    if missing or twice:
        raise ContractError(
            name,
            "reports every record exactly once",
            f"missing: {', '.join(missing) or '-'}; reported more than once: {', '.join(twice) or '-'}",
        )
    reference = _reference(tasks, data_for)
    for record in driver.records:
        expected = reference[record.spec.run_id]
        label = record.spec.label + (" (failing data)" if record.spec.dataset == FAILING else "")
        if record.status != expected.status:
            raise ContractError(
                name,
                "results equal the local launcher's",
                f"{label}: status {record.status}, local {expected.status}",
            )
        got, want = _metrics(record.row), _metrics(expected.row)
        differ = [
            k for k in want.keys() | got.keys()
            if not (k in got and k in want and (got[k] == want[k] or (math.isnan(got[k]) and math.isnan(want[k]))))
        ]  # fmt: skip
        if differ:
            shown = ", ".join(f"{k} {got.get(k)} vs {want.get(k)}" for k in sorted(differ)[:4])
            raise ContractError(name, "results equal the local launcher's", f"{label}: {shown}")
        same_predictions = (record.predictions is None and expected.predictions is None) or (
            record.predictions is not None
            and expected.predictions is not None
            and np.array_equal(record.predictions, expected.predictions)
        )
        if not same_predictions:
            raise ContractError(
                name, "results equal the local launcher's", f"{label}: test predictions differ"
            )
