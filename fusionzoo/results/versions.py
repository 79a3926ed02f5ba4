"""Data versions in a runs directory: the runs of one dataset made on different data fingerprints.

Two benches on one ``--out`` whose data changed in between (files, loader options, limit, encoders:
everything the ``data_fingerprint`` covers) leave runs of two *versions* of a dataset. Their test sets
differ, so a number of one version is never ranked against, averaged with or paired-tested against
a number of the other. Readers of a whole runs directory (``fusionzoo report``, ``fusionzoo eval``'s
summaries) show **one version per dataset** — the latest (the version whose newest run finished
last) unless another is asked for by its fingerprint — and name the versions they leave out, with
how to see them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from fusionzoo.errors import InputError

__all__ = ["DataVersion", "VersionError", "data_versions", "pick_versions", "versions_note"]

SHORT = 12  # characters of a fingerprint shown (enough to tell versions apart, and to pass back)


class VersionError(InputError, ValueError):
    """A requested data version is not in the runs table."""


@dataclass(frozen=True)
class DataVersion:
    """One data version of a dataset: its fingerprint, how many runs it has, when the newest finished."""

    dataset: str
    fingerprint: str
    runs: int
    finished_at: str

    @property
    def short(self) -> str:
        return self.fingerprint[:SHORT]

    def describe(self) -> str:
        when = f", newest {self.finished_at}" if self.finished_at else ""
        return f"{self.short} ({self.runs} run{'s' if self.runs != 1 else ''}{when})"


def data_versions(runs: pd.DataFrame) -> dict[str, list[DataVersion]]:
    """Per dataset, its data versions in ``runs``, newest first."""
    if not len(runs) or "data_fingerprint" not in runs.columns:
        return {}
    finished = (
        runs["finished_at"].astype(str).where(runs["finished_at"].notna(), "")
        if "finished_at" in runs
        else pd.Series("", index=runs.index)
    )
    frame = runs.assign(_finished=finished, _fingerprint=runs["data_fingerprint"].astype(str))
    out: dict[str, list[DataVersion]] = {}
    for dataset, part in frame.groupby("dataset", sort=False):
        stats = part.groupby("_fingerprint", sort=False).agg(
            runs=("run_id", "size"), newest=("_finished", "max")
        )
        stats = stats.sort_values(["newest", "runs"], ascending=False, kind="stable")
        out[str(dataset)] = [
            DataVersion(str(dataset), str(fp), int(row["runs"]), str(row["newest"]))
            for fp, row in stats.iterrows()
        ]
    return out


def pick_versions(
    runs: pd.DataFrame, choice: str | None = None
) -> tuple[pd.DataFrame, list[DataVersion], list[DataVersion]]:
    """(the runs of one data version per dataset, the versions shown, the versions left out).

    ``choice``: ``None`` or ``"latest"`` (each dataset's newest version), or a fingerprint (a prefix is
    enough): that version for the dataset(s) that have it, the latest for the others. A fingerprint no
    dataset has is a :class:`VersionError` naming the versions there are.
    """
    versions = data_versions(runs)
    if not versions:
        return runs, [], []
    wanted = None if choice in (None, "", "latest") else str(choice)
    if wanted is not None and not any(
        v.fingerprint.startswith(wanted) for vs in versions.values() for v in vs
    ):
        known = "; ".join(f"{d}: " + ", ".join(v.describe() for v in vs) for d, vs in versions.items())
        raise VersionError(f"no runs of data version '{wanted}'; the versions in this runs table: {known}")
    shown, left_out = [], []
    for candidates in versions.values():
        match = [v for v in candidates if wanted is not None and v.fingerprint.startswith(wanted)]
        pick = match[0] if match else candidates[0]
        shown.append(pick)
        left_out.extend(v for v in candidates if v is not pick)
    keep = {(v.dataset, v.fingerprint) for v in shown}
    mask = [(str(d), str(f)) in keep for d, f in zip(runs["dataset"], runs["data_fingerprint"], strict=True)]
    return runs[mask], shown, left_out


def versions_note(shown: list[DataVersion], left_out: list[DataVersion], command: str = "") -> list[str]:
    """One line per dataset with versions left out: which version is shown, which are not, and how to
    see one (``command`` + ``--data-version FINGERPRINT``)."""
    lines = []
    for version in shown:
        others = [v for v in left_out if v.dataset == version.dataset]
        if not others:
            continue
        how = f"; to see one: {command} --data-version {others[0].short}" if command else ""
        lines.append(
            f"{version.dataset}: showing data version {version.describe()}; not shown (other data, tested "
            f"on another test set, never ranked together): {', '.join(v.describe() for v in others)}{how}"
        )
    return lines
