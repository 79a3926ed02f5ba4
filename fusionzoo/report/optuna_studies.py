"""Optuna studies found in the runs directory: history, parameter importances, parallel coordinates.

``fusionzoo tune`` keeps its studies in ``<runs dir>/optuna.db`` (SQLite) or a journal file
(``--storage journal:PATH``). This section opens every SQLite file with Optuna's tables and every
``*.journal`` file in the runs directory and its direct subfolders (read only: a SQLite file without
Optuna's ``studies`` table is never handed to Optuna, which would create tables in it), loads each study
(``optuna.load_study``) and shows ``optuna.visualization``'s plotly figures — optimization history,
parameter importances (fANOVA; 2+ completed trials) and parallel coordinates — with the static PNG of
``optuna.visualization.matplotlib``'s counterpart, plus a table of trial states and the best trial.
"""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from fusionzoo.report.base import Figure, Reporter, ResultsView, Section, Table, Text, register_reporter

__all__ = ["OptunaStudies", "find_storages"]


def _is_optuna_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                return False
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            found = connection.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name IN ('studies', 'version_info')"
            ).fetchall()
        finally:
            connection.close()
        return len(found) == 2
    except (OSError, sqlite3.Error):
        return False


def find_storages(runs_dir: str | Path) -> list[tuple[Path, str]]:
    """(file, storage) of every Optuna SQLite database and journal in ``runs_dir`` and its subfolders."""
    root = Path(runs_dir)
    candidates = [*root.glob("*"), *root.glob("*/*")]
    out = []
    for path in sorted(p for p in candidates if p.is_file()):
        if path.suffix == ".journal":
            out.append((path, f"journal:{path}"))
        elif path.suffix in (".db", ".sqlite", ".sqlite3") and _is_optuna_sqlite(path):
            out.append((path, f"sqlite:///{path.resolve()}"))
    return out


def _open(storage: str) -> Any:
    import optuna

    if storage.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(storage.removeprefix("journal:")))
    return optuna.storages.RDBStorage(storage, skip_table_creation=True)


def _figures(study: Any) -> tuple[list[Figure], list[str]]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from optuna import visualization as plotly_vis
    from optuna.visualization import matplotlib as mpl_vis

    from fusionzoo.report.static import matplotlib_png
    from fusionzoo.tune.export import plot_specs

    plots, notes = plot_specs(study)
    plots = [p for p in plots if p[1] != "plot_pareto_front"]
    first = plots[0][2] if plots else {}
    if study.get_trials(deepcopy=False) and any(t.params for t in study.get_trials(deepcopy=False)):
        plots.append(("parallel coordinates", "plot_parallel_coordinate", {k: v for k, v in first.items()}))
    figures = []
    for label, function, kwargs in plots:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                interactive = getattr(plotly_vis, function)(study, **kwargs)
                interactive.update_layout(height=420, template="plotly_white")
            except (ValueError, RuntimeError) as exc:
                notes.append(f"{label}: {exc}")
                continue
            png = None
            try:
                axes = getattr(mpl_vis, function)(study, **kwargs)
                figure = axes.figure if hasattr(axes, "figure") else plt.gcf()
                figure.set_size_inches(9, 4.2)
                png = matplotlib_png(figure)
            except (ValueError, RuntimeError, AttributeError, TypeError) as exc:
                notes.append(f"{label} (static): {exc}")
            finally:
                plt.close("all")
        figures.append(Figure(interactive, png=png, caption=f"{study.study_name}: {label.replace('_', ' ')}"))
    return figures, notes


def _trials_table(study: Any) -> pd.DataFrame:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    row: dict[str, Any] = {
        "study": study.study_name,
        "direction": ", ".join(d.name.lower() for d in study.directions),
        "trials": str(len(trials)),
        **{k: str(v) for k, v in counts.items() if v},
    }
    if len(study.directions) == 1:
        try:
            best = study.best_trial
        except ValueError:
            best = None
        if best is not None:
            row["best value"] = f"{best.value:.4f}"
            row["best trial"] = str(best.number)
            row["best params"] = ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items()
            )
    return pd.DataFrame([row])


@register_reporter
class OptunaStudies(Reporter):
    """Every Optuna study in the runs directory (module docstring)."""

    name = "optuna"
    title = "Tuning studies (Optuna)"
    description = "optimization history, parameter importances and parallel coordinates of tune studies"
    formats = ("section",)
    order = 120

    def render(self, view: ResultsView, fmt: str = "section", **_: Any) -> Section:
        import optuna

        storages = find_storages(view.dir)
        if not storages:
            return Section.absent(self, "no Optuna storage (optuna.db or *.journal) in the runs directory")
        blocks: list[Any] = []
        for path, url in storages:
            try:
                storage = _open(url)
                names = optuna.get_all_study_names(storage=storage)
            except Exception as exc:  # noqa: BLE001 - an unreadable or incompatible file: say so, go on
                blocks.append(
                    Text(f"{path}: cannot be opened as an Optuna storage ({type(exc).__name__}: {exc})")
                )
                continue
            for name in names:
                study = optuna.load_study(study_name=name, storage=storage)
                blocks.append(Table(_trials_table(study), caption=f"study '{name}' in {path}"))
                figures, notes = _figures(study)
                blocks.extend(figures)
                if notes:
                    blocks.append(Text("; ".join(notes)))
        if not blocks:
            return Section.absent(self, "the Optuna storages in the runs directory hold no study")
        return Section.of(self, *blocks)
