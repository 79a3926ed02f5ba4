"""The exact trial budget of a study, shared by every worker.

``--trials N`` is the *target total* of the study, not a number to add: a rerun runs only the
remainder, and several workers together stop at exactly N. A trial counts toward the budget when it is
COMPLETE, PRUNED, RUNNING, WAITING (a re-queued retry) or FAILED by the objective itself (an exception
or a diverged run, user attr ``fusionzoo_status``). A trial failed by the heartbeat mechanism does not
count (its retry does), nor does an *overflow* trial (below).

The claim is race-free because Optuna numbers trials atomically in the storage: right after ``ask``
a worker counts the budget-counting trials whose number is *smaller* than its own. That set was fixed
before its own trial existed, so two workers can never both see room for the last slot; the loser
marks its trial FAILED with status ``overflow`` and stops. Before each ``ask`` a cheap pre-check stops
the worker when the budget is already taken, so overflow trials only occur in a genuine race.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "STATUS_ATTR",
    "BudgetCounts",
    "BudgetExhausted",
    "budget_counts",
    "claim_or_overflow",
    "claim_slot",
    "counts_toward_budget",
    "epochs_trained",
    "hide_overflow_failures",
]

STATUS_ATTR = "fusionzoo_status"  # complete | pruned | failed | diverged | overflow


class BudgetExhausted(Exception):
    """Raised inside the objective when the trial lost the race for the last budget slot."""


def counts_toward_budget(trial: FrozenTrial) -> bool:
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING):
        return True
    return trial.state == TrialState.FAIL and trial.user_attrs.get(STATUS_ATTR) in ("failed", "diverged")


@dataclass
class BudgetCounts:
    counted: int = 0
    finished: int = 0  # COMPLETE + PRUNED + objective failures
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0
    stale: int = 0  # failed by the heartbeat mechanism (retried or given up)
    overflow: int = 0
    epochs: int = 0  # epochs trained by the finished trials (complete, pruned, failed): the compute spent


def epochs_trained(trial: FrozenTrial) -> int:
    """Epochs one finished trial trained (``epochs_run``; a pruned trial's epoch; else its reports)."""
    attrs = trial.user_attrs
    for key in ("epochs_run", "pruned_at_epoch"):
        if isinstance(attrs.get(key), int):
            return int(attrs[key])
    return len(trial.intermediate_values)


def budget_counts(trials: Sequence[FrozenTrial]) -> BudgetCounts:
    out = BudgetCounts()
    for t in trials:
        if counts_toward_budget(t):
            out.counted += 1
        if t.state == TrialState.COMPLETE:
            out.complete += 1
        elif t.state == TrialState.PRUNED:
            out.pruned += 1
        elif t.state == TrialState.RUNNING:
            out.running += 1
        elif t.state == TrialState.WAITING:
            out.waiting += 1
        elif t.state == TrialState.FAIL:
            status = t.user_attrs.get(STATUS_ATTR)
            if status in ("failed", "diverged"):
                out.failed += 1
            elif status == "overflow":
                out.overflow += 1
            else:
                out.stale += 1
    out.finished = out.complete + out.pruned + out.failed
    out.epochs = sum(
        epochs_trained(t)
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and t.user_attrs.get(STATUS_ATTR) in ("failed", "diverged"))
    )
    return out


def claim_slot(study: optuna.Study, trial_number: int, target: int) -> bool:
    """Whether trial ``trial_number`` is within the first ``target`` budget-counting trials."""
    before = sum(
        1 for t in study.get_trials(deepcopy=False) if t.number < trial_number and counts_toward_budget(t)
    )
    return before < target


def claim_or_overflow(study: optuna.Study, trial: optuna.Trial, target: int) -> None:
    """Claim a budget slot for ``trial``, or mark it an uncounted overflow, stop the study and raise
    :class:`BudgetExhausted` (Optuna then fails the trial, without the usual traceback warning)."""
    if claim_slot(study, trial.number, target):
        return
    trial.set_user_attr(STATUS_ATTR, "overflow")
    _OVERFLOW_LOG_FILTER.numbers.add(trial.number)
    study.stop()
    raise BudgetExhausted(f"trial {trial.number}: the study already has {target} trials")


class _OverflowLogFilter(logging.Filter):
    """Hide Optuna's "Trial N failed" warnings for overflow trials: losing the race for the last slot
    is expected, not an error worth a traceback."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(message.startswith(f"Trial {n} failed") for n in self.numbers)


_OVERFLOW_LOG_FILTER = _OverflowLogFilter()


def hide_overflow_failures() -> None:
    """Install the overflow log filter on Optuna's optimize logger (once per process)."""
    optimize_logger = logging.getLogger("optuna.study._optimize")
    if _OVERFLOW_LOG_FILTER not in optimize_logger.filters:
        optimize_logger.addFilter(_OVERFLOW_LOG_FILTER)
