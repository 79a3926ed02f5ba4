"""Cross-dataset statistics of a suite (library layer), part 1: the runs table, validated and
normalised per dataset. Estimates: :mod:`fusionzoo.results.cross_estimates`; ranks:
:mod:`fusionzoo.results.cross_ranks`; all of them in one call: :mod:`fusionzoo.results.cross_summary`.

The input is a tidy table of runs, one row per run, higher scores better:

    dataset, method, seed, score   [+ split_seed, status, chance]

``method`` is whatever is compared across datasets (a fusion, or "fusion + head"; one configuration
per method and dataset: duplicated ``(dataset, method, seed, split_seed)`` rows are an error).
:func:`scores_from_results` builds it from a results table. :func:`prepare_runs` validates it once:

- **failed runs** (``score`` NaN, or ``status`` other than ``ok`` when the column exists) are
  excluded and counted per method (``Runs.failed``), never scored as zero;
- a dataset on which no method finished is dropped, and a method without a finished run on every
  remaining dataset is left out of the comparison (each with a note), so every aggregate compares
  the same datasets;
- scores are **normalised per dataset** (:data:`NORMALISATIONS`; default ``chance``):

  ``chance``    (s − c_d) / (1 − c_d): 0 = the chance level c_d of dataset d, 1 = perfect. c_d comes
                from a ``chance`` column or the ``chance={dataset: c}`` mapping; for accuracy use the
                majority-class rate of the test split (:func:`chance_accuracy`);
  ``baseline``  (s − b_d) / (1 − b_d), b_d = the named baseline's mean on d: the fraction of the
                baseline's remaining error that a method removes (0 = baseline, 1 = perfect);
  ``zscore``    (s − μ_d) / σ_d over every finished run on d (depends on the methods compared);
  ``none``      the raw scores (datasets already share a scale).

  Every normalisation is increasing and affine per dataset, so ranks and P(A > B) do not depend on
  it; the IQM and the mean do (they average across datasets).

The runs of one (method, dataset) differ by ``seed`` (and ``split_seed`` when it varies):
``Runs.variance_sources`` names them, and the intervals cover exactly these sources.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fusionzoo.errors import FusionzooError

__all__ = [
    "NORMALISATIONS",
    "REQUIRED",
    "CrossDatasetError",
    "Runs",
    "chance_accuracy",
    "normalise_scores",
    "prepare_runs",
    "scores_from_results",
]

REQUIRED = ("dataset", "method", "seed", "score")
NORMALISATIONS = ("chance", "baseline", "zscore", "none")


class CrossDatasetError(FusionzooError, ValueError):
    """A table that cannot be compared across datasets; the message names what is wrong and the fix."""


@dataclass(frozen=True)
class Runs:
    """A validated suite: the finished runs with their normalised scores, and what was left out.

    ``frame``: one row per finished run (``dataset, method, seed, [split_seed], score, normalised``);
    ``failed``: excluded runs per method (NaN score or status not ``ok``); ``datasets``/``methods``:
    those compared (complete blocks); ``notes``: what was dropped and why; ``normalisation``: how
    ``normalised`` was computed; ``variance_sources``: what the runs of one (method, dataset) vary.
    """

    frame: pd.DataFrame
    failed: pd.Series
    datasets: tuple[str, ...]
    methods: tuple[str, ...]
    normalisation: str
    variance_sources: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def tasks(self, method: str, column: str = "normalised") -> list[np.ndarray]:
        """The scores of ``method``'s runs, one array per dataset (in ``datasets`` order)."""
        rows = self.frame[self.frame["method"] == method]
        return [rows.loc[rows["dataset"] == d, column].to_numpy(dtype=np.float64) for d in self.datasets]

    def dataset_means(self, column: str = "score") -> pd.DataFrame:
        """datasets × methods table of the mean ``column`` over each (dataset, method)'s runs."""
        table = self.frame.pivot_table(index="dataset", columns="method", values=column, aggfunc="mean")
        return table.loc[list(self.datasets), list(self.methods)]


def chance_accuracy(classes: pd.DataFrame) -> pd.DataFrame:
    """Chance accuracies per data fingerprint from a ``classes.parquet`` table (``data_fingerprint,
    class_id, test_count``): ``num_classes``, ``uniform`` = 1/C (random guessing) and ``majority`` =
    max_c n_c / N on the test split (the best constant prediction; the default chance level)."""
    missing = [c for c in ("data_fingerprint", "class_id", "test_count") if c not in classes.columns]
    if missing:
        raise CrossDatasetError(f"the classes table lacks {', '.join(missing)}")
    grouped = classes.groupby("data_fingerprint", sort=True)["test_count"]
    out = pd.DataFrame({"num_classes": grouped.size(), "total": grouped.sum(), "top": grouped.max()})
    out["uniform"] = 1.0 / out["num_classes"]
    out["majority"] = np.where(out["total"] > 0, out["top"] / out["total"].clip(lower=1), np.nan)
    return out[["num_classes", "uniform", "majority"]].reset_index()


def scores_from_results(
    results: pd.DataFrame, metric: str = "test_accuracy", method: Sequence[str] = ("fusion", "head")
) -> pd.DataFrame:
    """The tidy table of a results table (``results.parquet`` rows): ``dataset, method, seed, score,
    status`` (+ ``split_seed`` when present). ``method`` joins the values of the ``method`` columns
    with " + ", leaving out those that are the same in every row (one head → the fusion's name)."""
    missing = [c for c in ("dataset", "seed", metric, *method) if c not in results.columns]
    if missing:
        raise CrossDatasetError(f"the results table lacks {', '.join(missing)}")
    varying = [c for c in method if results[c].nunique(dropna=False) > 1] or list(method[:1])
    out = pd.DataFrame(
        {
            "dataset": results["dataset"].astype(str),
            "method": results[varying].astype(str).agg(" + ".join, axis=1),
            "seed": results["seed"],
            "score": pd.to_numeric(results[metric], errors="coerce"),
        }
    )
    for extra in ("split_seed", "status"):
        if extra in results.columns:
            out[extra] = results[extra].to_numpy()
    return out.reset_index(drop=True)


def prepare_runs(
    frame: pd.DataFrame,
    *,
    normalise: str = "chance",
    chance: Mapping[str, float] | None = None,
    baseline: str | None = None,
) -> Runs:
    """Validate ``frame`` (see the module docstring), exclude and count failed runs, keep complete
    blocks and normalise; errors name the column, row or dataset at fault."""
    if normalise not in NORMALISATIONS:
        raise CrossDatasetError(f"normalise must be one of {', '.join(NORMALISATIONS)}, got {normalise!r}")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise CrossDatasetError(f"the runs table lacks {', '.join(missing)} (needs {', '.join(REQUIRED)})")
    if not len(frame):
        raise CrossDatasetError("the runs table is empty")
    table = frame.copy()
    table["dataset"], table["method"] = table["dataset"].astype(str), table["method"].astype(str)
    table["score"] = pd.to_numeric(table["score"], errors="coerce").astype(float)
    key = ["dataset", "method", "seed", *(["split_seed"] if "split_seed" in table.columns else [])]
    dup = table[table.duplicated(key, keep=False)]
    if len(dup):
        first = dup.iloc[0]
        raise CrossDatasetError(
            f"{len(dup)} rows share ({', '.join(key)}) = ({', '.join(str(first[k]) for k in key)}), ...: "
            "one row per run expected (one configuration per method and dataset)"
        )
    ok = np.isfinite(table["score"].to_numpy())
    if "status" in table.columns:
        ok &= (table["status"].astype(str) == "ok").to_numpy()
    failed = table.loc[~ok].groupby("method").size()
    finished, notes = _complete_blocks(table.loc[ok], table)
    methods = tuple(sorted(finished["method"].unique()))
    datasets = tuple(sorted(finished["dataset"].unique()))
    finished = finished.assign(
        normalised=normalise_scores(finished, normalise, chance=chance, baseline=baseline)
    )
    sources = ["seed"]
    if "split_seed" in finished.columns and finished["split_seed"].nunique() > 1:
        sources.append("split_seed")
    return Runs(
        frame=finished.reset_index(drop=True),
        failed=failed.reindex(sorted(table["method"].unique()), fill_value=0).astype(int),
        datasets=datasets,
        methods=methods,
        normalisation=_describe(normalise, baseline),
        variance_sources=tuple(sources),
        notes=tuple(notes),
    )


def _complete_blocks(finished: pd.DataFrame, table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    notes = []
    for dataset in sorted(set(table["dataset"]) - set(finished["dataset"])):
        notes.append(f"dataset {dataset}: no finished run; left out")
    datasets = set(finished["dataset"])
    for method in sorted(table["method"].unique()):
        lacking = sorted(datasets - set(finished.loc[finished["method"] == method, "dataset"]))
        if lacking:
            notes.append(f"{method}: no finished run on {', '.join(lacking)}; left out of the comparison")
            finished = finished[finished["method"] != method]
    if not len(finished):
        raise CrossDatasetError("no method has a finished run on every dataset: " + "; ".join(notes))
    return finished, notes


def _describe(how: str, baseline: str | None) -> str:
    return {
        "chance": "(score − chance) / (1 − chance) per dataset",
        "baseline": f"(score − {baseline}) / (1 − {baseline}) per dataset ({baseline}'s mean)",
        "zscore": "z-score per dataset (over every finished run)",
        "none": "raw scores",
    }[how]


def normalise_scores(
    finished: pd.DataFrame,
    how: str = "chance",
    *,
    chance: Mapping[str, float] | None = None,
    baseline: str | None = None,
) -> pd.Series:
    """The normalised ``score`` of each row of ``finished`` (finite scores; see the module docstring)."""
    scores, dataset = finished["score"].astype(float), finished["dataset"]
    if how == "none":
        return scores.copy()
    if how == "zscore":
        grouped = scores.groupby(dataset)
        spread = grouped.transform("std").fillna(0.0)
        return ((scores - grouped.transform("mean")) / spread.where(spread > 0, 1.0)).where(spread > 0, 0.0)
    if how == "chance":
        reference = _chance_levels(finished, chance)
    elif how == "baseline":
        if baseline is None or baseline not in set(finished["method"]):
            known = ", ".join(sorted(set(finished["method"])))
            raise CrossDatasetError(f"normalise='baseline' needs a baseline among the methods ({known})")
        means = scores[finished["method"] == baseline].groupby(dataset).mean()
        reference = dataset.map(means)
    else:
        raise CrossDatasetError(f"normalise must be one of {', '.join(NORMALISATIONS)}, got {how!r}")
    bad = sorted(set(dataset[~(reference < 1.0)]))
    if bad:
        raise CrossDatasetError(
            f"normalise={how!r}: the reference score of {', '.join(bad)} is not below 1 "
            "(a score of 1 must be perfect; use normalise='zscore' or 'none' for other scales)"
        )
    return (scores - reference) / (1.0 - reference)


def _chance_levels(finished: pd.DataFrame, chance: Mapping[str, float] | None) -> pd.Series:
    datasets = sorted(set(finished["dataset"]))
    if chance is not None:
        missing = [d for d in datasets if d not in chance]
        if missing:
            raise CrossDatasetError(f"chance levels missing for {', '.join(missing)}")
        levels = finished["dataset"].map({d: float(chance[d]) for d in datasets})
    elif "chance" in finished.columns:
        per = finished.groupby("dataset")["chance"].nunique(dropna=False)
        if (per > 1).any():
            raise CrossDatasetError(f"the chance column differs within {', '.join(per[per > 1].index)}")
        levels = finished["chance"].astype(float)
    else:
        raise CrossDatasetError(
            "normalise='chance' needs each dataset's chance level: a 'chance' column or "
            "chance={dataset: value} (chance_accuracy(classes table) gives them); "
            "or normalise='baseline' | 'zscore' | 'none'"
        )
    bad = sorted(set(finished["dataset"][~((levels >= 0) & (levels < 1))]))
    if bad:
        raise CrossDatasetError(f"chance levels must lie in [0, 1): {', '.join(bad)}")
    return levels
