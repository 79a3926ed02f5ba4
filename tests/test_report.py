"""``fusionzoo report``: every reporter on hand-built results tables (tests/report_tables.py), the page,
the paper tables, the CLI, missing tables and a third-party section plugin."""

from __future__ import annotations

import html.parser
import io
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import report_tables as rt
from click.testing import CliRunner
from scipy import stats as sps
from sklearn.metrics import confusion_matrix, f1_score

from fusionzoo import registry
from fusionzoo.cli import main
from fusionzoo.report.base import Figure, ResultsView, Section, Table, section_reporters
from fusionzoo.report.html import render_page, render_sections
from fusionzoo.results.stats import holm, pairwise, summarize
from fusionzoo.results.store import ResultsStore, write_table

BUILT_IN_SECTIONS = {
    "leaderboard_table",
    "accuracy",
    "significance",
    "class_f1",
    "geo",
    "human",
    "confusion",
    "curves",
    "robustness",
    "pareto",
    "diagnostics",
    "optuna",
    "provenance",
}


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> ResultsView:
    store = rt.build_runs_dir(tmp_path_factory.mktemp("report-full"))
    return ResultsView.of(store)


@pytest.fixture(scope="module")
def bare(tmp_path_factory) -> ResultsView:
    """Only results, history and predictions: every optional table is missing."""
    store = rt.build_runs_dir(tmp_path_factory.mktemp("report-bare"), optional=False)
    return ResultsView.of(store)


def render(view: ResultsView, name: str) -> Section:
    return registry.create("reporter", name).render(view, "section")


def figures(section: Section) -> list[Figure]:
    return [b for b in section.blocks if isinstance(b, Figure)]


def tables(section: Section) -> list[Table]:
    return [b for b in section.blocks if isinstance(b, Table)]


def traces(section: Section, index: int = 0) -> list:
    return list(figures(section)[index].plotly.data)


# ------------------------------------------------------------------------------- every section
def test_every_builtin_section_is_registered_in_report_order():
    names = [r.name for r in section_reporters()]
    assert set(names) >= BUILT_IN_SECTIONS
    assert names[0] == "leaderboard_table" and names[-1] == "provenance"


@pytest.mark.parametrize("name", sorted(BUILT_IN_SECTIONS))
def test_each_section_renders_the_full_tables_and_is_absent_with_a_reason_without_them(name, full, tmp_path):
    section = render(full, name)
    assert not section.missing, section.missing
    assert section.blocks and all(isinstance(b, Figure | Table) or hasattr(b, "text") for b in section.blocks)
    for block in figures(section):
        assert block.plotly is not None and len(block.plotly.data) > 0
    empty = render(ResultsView.of(ResultsStore(tmp_path / "empty")), name)
    assert empty.missing and not empty.blocks  # absent, with the one-line reason the page shows


def test_sections_needing_optional_tables_say_which_table_is_missing(bare):
    missing = {s.name: s.missing for s in render_sections(bare)}
    for name, table in (
        ("robustness", "robustness.parquet"),
        ("pareto", "efficiency.parquet"),
        ("diagnostics", "diagnostics.parquet"),
        ("class_f1", "classes.parquet"),
        ("optuna", "Optuna storage"),
    ):
        assert table in missing[name], (name, missing[name])
    for name in ("leaderboard_table", "accuracy", "significance", "geo", "human", "confusion", "curves"):
        assert not missing[name], (name, missing[name])
    assert "provenance.parquet" in " ".join(
        b.text for b in render(bare, "provenance").blocks if hasattr(b, "text")
    )


# ------------------------------------------------------------------------------- leaderboard
def test_leaderboard_section_is_summarize_in_order_with_marks_bold_best_and_failures(full):
    summary = summarize(full.runs, "test_accuracy", predictions=full.store.predictions)
    section = render(full, "leaderboard_table")
    board, failures = tables(section)[:2]
    frame = board.frame
    assert list(frame["fusion"]) == list(summary["fusion"])
    for (_, row), cell in zip(summary.iterrows(), frame["accuracy (%)"], strict=True):
        assert cell.startswith(f"{row['mean'] * 100:.2f} ± {row['ci'] * 100:.2f}")
        assert cell.endswith(" *") == bool(row["significant"])
    assert summary["significant"].sum() >= 2  # the fixture has marked rows: the check is not vacuous
    assert board.bold.loc[0, "accuracy (%)"] and not board.bold.loc[1:, "accuracy (%)"].any()
    assert frame.loc[0, "vs best"] == "best" and "(paired t)" in frame.loc[1, "vs best"]
    assert list(frame["GFLOPs"])[0] != "-" and "R missing_image" in frame.columns
    assert list(failures.frame["status"]) == ["diverged"] and "nan" in failures.frame["error"].iloc[0]
    assert list(frame["failed / diverged"])[list(frame["fusion"]).index("film")] == "0 / 1"


def test_paper_tables_latex_markdown_csv(full):
    reporter = registry.create("reporter", "leaderboard_table")
    summary = summarize(full.runs, "test_accuracy", predictions=full.store.predictions)
    latex = reporter.render(full, "latex")
    assert latex.count(r"\begin{table}") == 1 and r"\toprule" in latex and r"\bottomrule" in latex
    assert r"\textbf{" in latex and r"$\pm$" in latex and r"concat\_mlp" in latex and "$^{*}$" in latex
    best = summary.iloc[0]
    assert rf"\textbf{{{best['mean'] * 100:.2f} $\pm$ {best['ci'] * 100:.2f}}}" in latex
    assert latex.count("$^{*}$") == int(summary["significant"].sum())
    markdown = reporter.render(full, "md")
    assert f"**{best['mean'] * 100:.2f} ± {best['ci'] * 100:.2f}**" in markdown
    assert markdown.count(r" \*") == int(summary["significant"].sum()) and "| fusion" in markdown
    frame = pd.read_csv(io.StringIO(reporter.render(full, "csv")))
    assert list(frame["fusion"]) == list(summary["fusion"])
    assert np.allclose(frame["test_accuracy_mean"], summary["mean"])
    assert list(frame["significant"]) == list(summary["significant"])
    assert "relative:missing_image:imputation=mask" in frame.columns and frame["gflops_forward"].notna().all()


# ------------------------------------------------------------------------------- accuracy
def test_accuracy_figure_has_every_seed_and_the_summary_mean_and_ci(full):
    summary = summarize(full.runs, "test_accuracy")
    data = traces(render(full, "accuracy"))
    points = [t for t in data if t.xaxis in (None, "x") and t.marker.symbol != "diamond"]
    means = [t for t in data if t.xaxis in (None, "x") and t.marker.symbol == "diamond"]
    assert [len(t.y) for t in points] == list(summary["n"])
    for trace, (_, row) in zip(means, summary.iterrows(), strict=True):
        assert math.isclose(trace.y[0], row["mean"] * 100) and math.isclose(
            trace.error_y.array[0], row["ci"] * 100
        )
    ok = full.ok[full.ok["fusion"] == summary["fusion"].iloc[0]].sort_values("seed")
    assert np.allclose(points[0].y, ok["test_accuracy"] * 100)


# ------------------------------------------------------------------------------- significance
def test_significance_marks_exactly_the_pairs_stats_marks_and_holm_by_hand(full):
    from fusionzoo.report.significance import significance_matrix

    pairs = pairwise(full.runs, "test_accuracy", predictions=full.store.predictions)
    order = list(summarize(full.runs, "test_accuracy")["config_id"])
    assert len(pairs) == len(order) * (len(order) - 1) // 2
    # by hand: paired t over the 3 shared seeds, Holm over all pairs
    ok = full.ok.pivot_table(index="seed", columns="config_id", values="test_accuracy")
    raw = [
        float(sps.ttest_rel(ok[a], ok[b]).pvalue)
        for a, b in zip(pairs["config_id_a"], pairs["config_id_b"], strict=True)
    ]
    assert np.allclose(pairs["p"], raw) and np.allclose(pairs["p_adjusted"], holm(raw))
    expected = {
        frozenset((a, b))
        for a, b, p in zip(pairs["config_id_a"], pairs["config_id_b"], holm(raw), strict=True)
        if p < 0.05
    }
    assert 0 < len(expected) < len(pairs)  # some marked, some not: the check is not vacuous
    _, _, marked = significance_matrix(pairs, order)
    shown = {frozenset((order[i], order[j])) for i, j in zip(*np.nonzero(marked), strict=True)}
    assert shown == expected
    # what the page shows: the '*' cells of the heatmap
    heatmap = traces(render(full, "significance"))[0]
    stars = {
        frozenset((order[i], order[j]))
        for i, row in enumerate(heatmap.text)
        for j, t in enumerate(row)
        if t.endswith("*")
    }
    assert stars == expected
    # a larger family is more conservative: marked here => marked against the best in the leaderboard
    board = summarize(full.runs, "test_accuracy").set_index("config_id")
    for pair in expected:
        if order[0] in pair:
            (other,) = pair - {order[0]}
            assert board.loc[other, "significant"]


def test_pairwise_section_shows_both_holm_families_side_by_side_and_names_them(full):
    """The leaderboard marks film (Holm over the 3 comparisons with the best) while the pairwise family
    (all 6 pairs) does not: both adjusted p-values are shown for that pair, each family named."""
    from fusionzoo.report.common import fmt_num

    section = render(full, "significance")
    frame, caption = tables(section)[0].frame, tables(section)[0].caption
    board = summarize(full.runs, "test_accuracy", predictions=full.store.predictions).set_index("fusion")
    pairs = pairwise(full.runs, "test_accuracy", predictions=full.store.predictions)
    row = frame[frame["worse mean"] == "film"].iloc[0]
    assert row["better mean"].startswith("fluid")
    film_id = board.loc["film", "config_id"]
    pair = pairs[(pairs["config_id_b"] == film_id) & (pairs["fusion_a"].str.startswith("fluid"))].iloc[0]
    assert row["p (Holm, vs best)"] == fmt_num(board.loc["film", "p_adjusted"], 4)
    assert row["p (Holm, all pairs)"] == fmt_num(pair["p_adjusted"], 4)
    assert (
        row["leaderboard mark"] == "* worse" and row["differs (all pairs)"] == "no"
    )  # the two families differ
    assert "all 6 pairs" in caption and "3 comparisons with the best" in caption
    leaderboard = tables(render(full, "leaderboard_table"))[0].caption
    assert "Holm-adjusted over the comparisons with the best" in leaderboard and "every pair" in leaderboard


def test_pairwise_uses_mcnemar_with_one_shared_seed(full):
    one_seed = full.runs[full.runs["seed"] == 0]
    pairs = pairwise(one_seed, "test_accuracy", predictions=full.store.predictions)
    assert set(pairs["test"]) == {"McNemar"} and pairs["p"].notna().all()


# ------------------------------------------------------------------------------- per-class F1
def test_class_f1_buckets_match_sklearn_by_hand(full):
    section = render(full, "class_f1")
    frame = tables(section)[0].frame.set_index("configuration")
    buckets = rt.expected_buckets()
    fusion = "film"
    per_seed = []
    for run_id in full.ok[full.ok["fusion"] == fusion]["run_id"]:
        pred, truth = full.store.predictions(run_id)
        per_seed.append(f1_score(truth, pred, labels=range(rt.NUM_CLASSES), average=None))
    for bucket in ("head", "medium", "tail"):
        values = [s[buckets == bucket].mean() for s in per_seed]
        mean = np.mean(values) * 100
        half = sps.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values)) * 100
        assert frame.loc[fusion, f"{bucket} macro-F1 (%)"] == f"{mean:.2f} ± {half:.2f}"  # label = fusion
    lines = traces(section)
    assert len(lines) == 4 and len(lines[0].y) == rt.NUM_CLASSES


# ------------------------------------------------------------------------------- geo, human
def test_geo_heatmap_cells_are_mean_accuracies_per_language(full):
    heatmap = traces(render(full, "geo"))[0]
    assert list(heatmap.x) == list(rt.GEOS)
    order = list(summarize(full.runs, "test_accuracy")["fusion"])
    for i, fusion in enumerate(order):
        runs = full.ok[full.ok["fusion"] == fusion]
        for j, geo in enumerate(rt.GEOS):
            assert math.isclose(heatmap.z[i][j], runs[f"test_acc_geo_{geo}"].mean() * 100)


def test_human_subset_bars_and_paired_difference(full):
    section = render(full, "human")
    every, human = traces(section)
    order = list(summarize(full.runs, "test_accuracy")["fusion"])
    for i, fusion in enumerate(order):
        runs = full.ok[full.ok["fusion"] == fusion]
        assert math.isclose(every.y[i], runs["test_accuracy"].mean() * 100)
        assert math.isclose(human.y[i], runs["test_acc_human"].mean() * 100)
    gap = (
        tables(section)[0]
        .frame.set_index("configuration")
        .loc["fluid:layers=1,queries=8", "human − all (pts)"]
    )
    runs = full.ok[full.ok["fusion"].str.startswith("fluid")]
    assert gap.startswith(f"{(runs['test_acc_human'] - runs['test_accuracy']).mean() * 100:.2f}")


# ------------------------------------------------------------------------------- confusion
def test_most_confused_picks_the_largest_off_diagonal_cells():
    from fusionzoo.report.confusion import most_confused

    matrix = np.diag(np.full(20, 50))
    matrix[3, 7], matrix[7, 3], matrix[12, 1], matrix[5, 5] = 9, 4, 6, 99
    assert most_confused(matrix, limit=4) == [3, 7, 12, 1]
    assert most_confused(matrix[:4, :4], limit=4) == [0, 1, 2, 3]


def test_confusion_of_the_best_configuration_pools_its_seeds(full):
    section = render(full, "confusion")
    heatmap = traces(section)[0]
    best = summarize(full.runs, "test_accuracy").iloc[0]
    pooled = [full.store.predictions(r) for r in full.ok[full.ok["config_id"] == best["config_id"]]["run_id"]]
    matrix = confusion_matrix(np.concatenate([p[1] for p in pooled]), np.concatenate([p[0] for p in pooled]))
    assert np.array_equal(np.asarray(heatmap.customdata), matrix)  # 6 classes: all shown
    assert np.allclose(np.asarray(heatmap.z, dtype=float), matrix / matrix.sum(1, keepdims=True) * 100)
    assert list(heatmap.x) == [f"class-{c}" for c in range(rt.NUM_CLASSES)]  # names from classes.parquet
    top = tables(section)[0].frame.iloc[0]
    off = matrix - np.diag(np.diag(matrix))
    assert int(top["rows"]) == off.max()


# ------------------------------------------------------------------------------- curves
def test_training_curves_are_means_over_seeds_per_epoch(full):
    data = traces(render(full, "curves"))
    loss = [t for t in data if t.xaxis in (None, "x")]
    best = summarize(full.runs, "test_accuracy").iloc[0]
    history = full.history[
        full.history["run_id"].isin(full.ok[full.ok["config_id"] == best["config_id"]]["run_id"])
    ]
    assert np.allclose(loss[0].y, history.groupby("epoch")["train_loss"].mean())
    val = [t for t in data if t.xaxis == "x2"]
    assert np.allclose(val[0].y, history.groupby("epoch")["val_accuracy"].mean() * 100)


# ------------------------------------------------------------------------------- robustness
def test_relative_and_effective_robustness_follow_multibench_by_hand(full):
    from fusionzoo.report.robustness import robustness_summary

    summary = robustness_summary(full)
    table = full.table("robustness")
    protocol = "missing_image:imputation=mask"
    levels = np.array(rt.LEVELS)

    def curve(fusion: str, seed: int) -> np.ndarray:
        part = table[(table["protocol"] == protocol) & (table["fusion"] == fusion) & (table["seed"] == seed)]
        return part.sort_values("level")["test_accuracy"].to_numpy()

    reference = np.mean([curve("concat_mlp", s) for s in rt.SEEDS], axis=0)
    for fusion in ("film", "concat_mlp", "fluid:layers=1,queries=8"):
        areas = [
            np.sum((curve(fusion, s)[1:] + curve(fusion, s)[:-1]) / 2 * np.diff(levels)) for s in rt.SEEDS
        ]
        # ER: the mean gap over the perturbed levels (MultiBench sums them: K × this)
        gaps = [
            np.mean((curve(fusion, s) - (reference - reference[0] + curve(fusion, s)[0]))[1:])
            for s in rt.SEEDS
        ]
        cid = full.runs.loc[full.runs["fusion"] == fusion, "config_id"].iloc[0]
        row = summary[(summary["protocol"] == protocol) & (summary["config_id"] == cid)].iloc[0]
        assert math.isclose(row["relative"], np.mean(areas))
        assert math.isclose(row["effective"], np.mean(gaps), abs_tol=1e-12)
        assert math.isclose(row["clean"], full.ok.loc[full.ok["config_id"] == cid, "test_accuracy"].mean())
    part = summary[summary["protocol"] == protocol]
    assert math.isclose(part["relative_norm"].max(), 1.0) and math.isclose(part["relative_norm"].min(), 0.0)
    assert set(part["reference"]) == {"concat_mlp"}
    concat_id = full.runs.loc[full.runs["fusion"] == "concat_mlp", "config_id"].iloc[0]
    concat = part[part["config_id"] == concat_id]
    assert len(concat) == 1 and abs(concat["effective"].iloc[0]) < 1e-12  # the reference has ER 0
    ordered = part.set_index("config_id")["effective"]
    fluid = full.runs.loc[full.runs["fusion"].str.startswith("fluid"), "config_id"].iloc[0]
    film = full.runs.loc[full.runs["fusion"] == "film", "config_id"].iloc[0]
    assert ordered[fluid] > 0 > ordered[film]  # fluid degrades less than concat_mlp, film more


def test_robustness_section_curves_and_table(full):
    section = render(full, "robustness")
    data = traces(section)
    assert {t.xaxis for t in data} == {"x", "x2"}  # one panel per protocol
    assert all(list(t.x) == list(rt.LEVELS) for t in data)
    table = tables(section)[0]
    assert table.bold["relative R (accuracy)"].sum() == 2  # the best per protocol (of the named metric)


# ------------------------------------------------------------------------------- pareto
def test_robustness_section_matches_the_leaderboard_columns_of_main_summaries(full):
    """The report's R/ER are the per-run numbers the terminal leaderboard ranks by (run_extras), averaged
    over seeds; a protocol whose levels are not in [0, 1] is rescaled (a flat curve scores its clean
    value, so R is comparable across protocols)."""
    from fusionzoo.evaluation.views import run_extras
    from fusionzoo.report.robustness import robustness_summary

    summary = robustness_summary(full).set_index(["protocol", "config_id"])
    extras = pd.concat([full.ok[["config_id"]], run_extras(full.store, full.ok)], axis=1)
    for protocol, label in (
        ("missing_image:imputation=mask", "missing_image"),
        ("missing_text:imputation=mask", "missing_text"),
    ):
        means = extras.groupby("config_id")[[f"rel_robust_{label}", f"eff_robust_{label}"]].mean()
        for config_id, row in means.iterrows():
            assert math.isclose(summary.loc[(protocol, config_id), "relative"], row.iloc[0])
            assert math.isclose(summary.loc[(protocol, config_id), "effective"], row.iloc[1], abs_tol=1e-12)


def test_robustness_of_a_severity_grid_is_rescaled_to_the_unit_interval(tmp_path):
    store = rt.build_runs_dir(tmp_path, optuna_study=False)
    table = pd.read_parquet(store.dir / "robustness.parquet")
    image = table[table["protocol"] == "missing_image:imputation=mask"]
    severities = image.assign(level=image["level"] * 5, protocol="image_corruption:corruption=brightness")
    write_table(store.dir / "robustness.parquet", pd.concat([table, severities], ignore_index=True))
    from fusionzoo.report.robustness import robustness_summary

    summary = robustness_summary(ResultsView.of(store)).set_index(["protocol", "config_id"])
    for config_id in summary.index.get_level_values(1).unique():
        unit = summary.loc[("missing_image:imputation=mask", config_id)]
        grid = summary.loc[("image_corruption:corruption=brightness", config_id)]
        assert list(grid["levels"]) == [0.0, 2.5, 5.0]
        assert math.isclose(grid["relative"], unit["relative"]) and grid["relative"] <= grid["clean"] + 1e-12


def test_pareto_section_uses_the_efficiency_rows_of_each_configuration(full):
    section = render(full, "pareto")
    points = [t for t in traces(section) if t.mode == "markers" and t.xaxis in (None, "x")]
    efficiency = full.table("efficiency")
    efficiency = efficiency[efficiency["dim"] == 16].set_index("fusion")  # the dim-999 row matches no run
    assert {t.name for t in points} == set(full.ok["fusion"])
    for trace in points:
        fusion = trace.name
        assert math.isclose(trace.x[0], efficiency.loc[fusion, "gflops_forward"])
    front = [t for t in traces(section) if t.name == "Pareto front" and t.xaxis in (None, "x")][0]
    assert (
        len(front.x) >= 1 and tables(section)[0].frame["on front (FLOPs / latency)"].str.contains("yes").any()
    )


# ------------------------------------------------------------------------------- diagnostics
def test_diagnostics_histogram_and_expert_shares():
    from fusionzoo.report.diagnostics import expert_balance, histogram_stats

    frame = pd.DataFrame({"edge_low": [0.0, 0.5], "edge_high": [0.5, 1.0], "value": [1.0, 3.0]})
    mean, above = histogram_stats(frame)
    assert math.isclose(mean, (0.25 + 3 * 0.75) / 4) and math.isclose(above, 0.75)
    assert expert_balance(np.full(4, 0.25)) == (1.0, 1.0)
    entropy, ratio = expert_balance(np.array([0.5, 0.25, 0.125, 0.125]))
    assert 0 < entropy < 1 and ratio == 4.0


def test_diagnostics_section_pools_seeds(full):
    section = render(full, "diagnostics")
    gate, experts = traces(section, 0)[0], traces(section, 1)[0]
    table = full.table("diagnostics")
    counts = table[table["name"] == "fusion.gate"].groupby("bin")["value"].sum()
    assert np.allclose(gate.y, counts / counts.sum() * 100)
    shares = table[table["name"] == "head.expert_counts"].pivot_table(
        index="run_id", columns="bin", values="value"
    )
    assert np.allclose(experts.y, (shares.div(shares.sum(axis=1), axis=0)).mean() * 100)


# ------------------------------------------------------------------------------- optuna, provenance
def test_optuna_section_reads_studies_and_leaves_other_sqlite_files_alone(full, tmp_path):
    import sqlite3

    from fusionzoo.report.optuna_studies import find_storages

    section = render(full, "optuna")
    assert tables(section)[0].frame["study"].iloc[0] == "fluid-tune"
    captions = [f.caption for f in figures(section)]
    assert any("history" in c for c in captions) and any("parallel" in c for c in captions)
    assert all(f.png is not None for f in figures(section))  # optuna's matplotlib plots as the static copies
    other = tmp_path / "mlflow.db"
    sqlite3.connect(other).execute("CREATE TABLE runs (id TEXT)").connection.commit()
    before = other.read_bytes()
    assert find_storages(tmp_path) == [] and other.read_bytes() == before


def test_provenance_lists_the_invocations_of_the_runs(full):
    section = render(full, "provenance")
    frames = [t.frame for t in tables(section)]
    assert "fusionzoo bench --fusions fluid,film,concat_mlp --report" in list(frames[0]["command"])
    assert "fp-hand-built" in set(frames[1]["fingerprint"]) and "spec=timm:tiny" in set(
        frames[1]["image encoder"]
    )


# ------------------------------------------------------------------------------- the page
class _References(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "action", "poster", "data", "srcset", "formaction") and value:
                self.references.append(value)
            if name == "id":
                self.ids.append(value)


def network_references(page: str) -> list[str]:
    """Every src/href that leaves the page, plus CSS url()/@import and JS import of a URL."""
    parser = _References()
    parser.feed(page)
    outside = [r for r in parser.references if not r.startswith(("#", "data:"))]
    outside += re.findall(r"@import\s+[^;]+", page)
    outside += re.findall(r"url\(\s*['\"]?(?:https?:)?//[^)]*\)", page)
    outside += re.findall(r"\bimport\s*(?:\(|[^;()]*\bfrom\b)\s*['\"](?:https?:)?//[^'\"]+['\"]", page)
    return outside


def test_page_is_one_self_contained_file_with_toc_and_no_network_reference(full):
    page = registry.create("reporter", "html").render(full, "html")
    assert network_references(page) == []
    assert "<script src" not in page
    from plotly.offline import get_plotlyjs

    assert page.count(get_plotlyjs()[:200]) == 1
    parser = _References()
    parser.feed(page)
    for name in BUILT_IN_SECTIONS:
        assert f"sec-{name}" in parser.ids and f'href="#sec-{name}"' in page
    images = re.findall(r'<div class="fz-static"><img alt="[^"]*" src="data:image/png;base64,', page)
    plots = re.findall(r'class="fz-plot"', page)
    assert len(images) == len(plots) > 10  # every figure has its static PNG
    assert 'class="fz-table"' in page and "aria-sort" in page


def test_table_headers_and_cells_are_html_escaped():
    from fusionzoo.report.html import _table_html

    frame = pd.DataFrame({"<b>bold</b>": ["<i>x</i>"], "a & b": ["1"]})
    page = _table_html(Table(frame))
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "<i>x</i>" not in page and "&lt;i&gt;x&lt;/i&gt;" in page and "a &amp; b" in page


def test_page_lists_absent_sections_one_line_each(bare):
    page = render_page(render_sections(bare), bare)
    for title in ("Robustness", "FLUID diagnostics", "Tuning studies"):
        assert re.search(rf'<p class="absent">Not shown: {title}[^<]*</p>', page)
    assert 'id="sec-robustness"' not in page and 'id="sec-leaderboard_table"' in page


def test_network_reference_check_catches_what_it_should():
    bad = '<img src="https://x/y.png"><link href="//cdn/x.css"><style>@import "x.css";</style><script>import("https://e/m.js")</script>'
    assert len(network_references(bad)) == 4
    assert network_references('<a href="#sec-x">x</a><img src="data:image/png;base64,AA">') == []


# ------------------------------------------------------------------------------- plugins, CLI
PLUGIN = """
from fusionzoo.report.base import Reporter, Section, Text, register_reporter

@register_reporter
class ThrowAwaySection(Reporter):
    name = "throwaway_section"
    title = "A plugin's own section"
    formats = ("section",)
    order = 65

    def render(self, view, fmt="section", **_):
        return Section.of(self, Text(f"{len(view.runs)} runs seen by a plugin"))
"""


def test_a_throwaway_reporter_plugin_appears_in_the_report(full, tmp_path):
    plugin = tmp_path / "my_section.py"
    plugin.write_text(PLUGIN)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", str(full.dir), "--out", str(out), "--plugin", str(plugin)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert 'id="sec-throwaway_section"' in page and f"{len(full.runs)} runs seen by a plugin" in page
    assert (
        page.index("sec-human") < page.index("sec-throwaway_section") < page.index("sec-curves")
    )  # its order
    registry.REGISTRIES["reporter"].unregister("throwaway_section")


def test_cli_formats_and_default_paths(full, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["report", str(full.dir), "--format", "latex"])
    assert result.exit_code == 0, result.output
    tex = (full.dir / "report.tex").read_text()
    assert tex.startswith("% fusionzoo leaderboard: needs \\usepackage{booktabs}")  # its rules need it
    assert tex.splitlines()[1].startswith(r"\begin{table}")
    out = tmp_path / "board.md"
    assert runner.invoke(main, ["report", str(full.dir), "--format", "md", "--out", str(out)]).exit_code == 0
    assert "**" in out.read_text()
    sections = runner.invoke(
        main, ["report", str(full.dir), "--sections", "leader*", "--out", str(tmp_path / "l.html")]
    )
    assert sections.exit_code == 0 and "sec-leaderboard_table" in (tmp_path / "l.html").read_text()
    assert "sec-accuracy" not in (tmp_path / "l.html").read_text()


def test_cli_bad_inputs_are_clear_errors(full, tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["report", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    metric = runner.invoke(main, ["report", str(full.dir), "--metric", "acurracy"])
    assert metric.exit_code == 2 and "test_acurracy" in metric.output and "test_accuracy" in metric.output
    empty = tmp_path / "empty"
    empty.mkdir()
    table = runner.invoke(main, ["report", str(empty), "--format", "csv"])
    assert table.exit_code == 1 and "no runs" in table.output
    page = runner.invoke(main, ["report", str(empty)])  # no runs, no study: an error, not an empty page
    assert page.exit_code == 1 and "no runs" in page.output and "no Optuna study" in page.output
    assert not (empty / "report.html").exists()
    rt.write_study(empty / "optuna.db", trials=2)  # a tune --out directory: its studies are the report
    tuned = runner.invoke(main, ["report", str(empty)])
    assert tuned.exit_code == 0 and 'id="sec-optuna"' in (empty / "report.html").read_text()


def test_cli_sections_that_match_nothing_are_an_error_naming_the_sections(full, tmp_path):
    out = tmp_path / "l.html"
    result = CliRunner().invoke(
        main, ["report", str(full.dir), "--sections", "leaderbord", "--out", str(out)]
    )
    assert result.exit_code == 2 and not out.exists()
    text = " ".join(result.output.split())
    assert "'leaderbord' matches no section" in text and "did you mean 'leaderboard_table'" in text
    assert "significance" in text  # the list of sections
    latex = CliRunner().invoke(main, ["report", str(full.dir), "--format", "latex", "--sections", "geo"])
    assert latex.exit_code == 2 and "HTML report" in latex.output


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "pickled"])
def test_cli_corrupt_predictions_file_is_named_without_numpy_advice(full, tmp_path, damage):
    import shutil

    copy = tmp_path / "runs"
    shutil.copytree(full.dir, copy)
    victim = sorted((copy / "predictions").glob("*.npy"))[0]
    good = victim.read_bytes()
    if damage == "pickled":
        np.save(victim, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        victim.write_bytes({"garbage": b"not numpy at all" * 8, "truncated": good[:90], "empty": b""}[damage])
    result = CliRunner().invoke(main, ["report", str(copy)])
    text = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert str(victim) in text.replace(" ", "") or victim.name in text
    assert "pickle" not in text.lower() and "Traceback" not in text
    assert not (copy / "report.html").exists()


def test_static_figure_png_draws_the_supported_traces():
    import plotly.graph_objects as go
    from PIL import Image

    from fusionzoo.report.static import figure_png

    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], error_y={"array": [0.1, 0.2, 0.1]}, name="a"))
    fig.add_bar(x=["u", "v"], y=[1, 2], name="b")
    png = figure_png(fig)
    image = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    assert image.std() > 5  # not blank
    assert figure_png(go.Figure(go.Pie(values=[1, 2]))) is None  # unsupported: no static copy


def test_results_dir_path_is_a_path(full):
    assert isinstance(full.dir, Path) and (full.dir / "results.parquet").exists()


def test_protocol_names_are_short_labels_unless_two_specs_share_one():
    from fusionzoo.report.common import protocol_names

    names = protocol_names(["missing_image:imputation=mask,seed=0", "feature_noise:modality=both,seed=0"])
    assert names == {
        "missing_image:imputation=mask,seed=0": "missing_image",
        "feature_noise:modality=both,seed=0": "feature_noise",
    }
    twins = ["missing_image:imputation=mask,seed=0", "missing_image:imputation=zeros,seed=0"]
    assert protocol_names(twins) == {spec: spec for spec in twins}


def test_numbers_that_round_to_zero_have_no_minus_sign():
    from fusionzoo.report.common import fmt_num

    assert (
        fmt_num(-1e-17, 3) == "0.000" and fmt_num(-0.0004, 3) == "0.000" and fmt_num(-0.0006, 3) == "-0.001"
    )
    assert fmt_num(float("nan")) == "-" and fmt_num(None) == "-" and fmt_num(0.1234, 2, 100) == "12.34"


def test_terminal_tables_never_print_minus_zero():
    """eval's robustness table (the reference's ER is -1e-17) and the terminal leaderboard's cells."""
    from fusionzoo.evaluation.session import _fmt
    from fusionzoo.report.leaderboard import _fmt_extra, _fmt_value, fmt_mean_ci

    assert _fmt(-1e-17) == "0.000" and _fmt(-0.0004) == "0.000" and _fmt(-0.0006) == "-0.001"
    assert _fmt(-1e-17, 2) == "0.00" and _fmt(float("nan")) == "-"
    assert fmt_mean_ci(-1e-19, 1e-19) == "0.00 ± 0.00" and _fmt_value(-1e-19, float("nan")) == "0"
    assert (
        _fmt_extra("rel_robust_missing_image", -1e-19) == "0.00"
        and _fmt_extra("latency_p50_ms", -1e-9) == "0.000"
    )


def test_provenance_masks_every_url_password_and_records_the_cpu(tmp_path, monkeypatch):
    """The command line, the config and the environment keep URLs but never their passwords; the machine
    records the CPU model and the instruction set torch dispatches to (what CPU numbers depend on)."""
    import json as _json

    import torch

    from fusionzoo.config import load_config
    from fusionzoo.results.provenance import collect_provenance, cpu_model

    secret = "s3cret-pw"
    url = f"postgresql+psycopg2://bob:{secret}@db.example:5432/mlflow"
    config = load_config(None)
    config = config.model_copy(update={"bench": config.bench.model_copy(update={"mlflow": url})})
    monkeypatch.setenv("FUSIONZOO_TRACKING", f"http://alice:{secret}@host:5000/")
    argv = ["fusionzoo", "bench", "--mlflow", url, "--storage", f"mysql://u:{secret}@h/optuna"]
    row = collect_provenance(config, {}, [], argv=argv)
    for field in ("command", "config", "environment"):
        assert secret not in row[field], field
    assert "bob:***@db.example:5432" in row["command"] and "u:***@h/optuna" in row["command"]
    assert "bob:***@db.example" in row["config"] and "alice:***@host:5000" in row["environment"]
    machine = _json.loads(row["machine"])
    assert machine["cpu_model"] == cpu_model() and machine["cpu_model"]
    assert machine["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    # the report masks rows written before provenance did
    store = rt.build_runs_dir(tmp_path, optuna_study=False)
    frame = pd.read_parquet(store.dir / "provenance.parquet")
    frame.loc[0, "command"] = f"fusionzoo bench --mlflow {url}"
    write_table(store.dir / "provenance.parquet", frame)
    page = registry.create("reporter", "html").render(ResultsView.of(store), "html", sections="provenance")
    assert secret not in page and "bob:***@db.example" in page


def test_per_class_figure_shows_whole_class_names(tmp_path):
    """Long class names were cut to 18 characters and by a fixed margin: whole names, a margin that grows."""
    store = rt.build_runs_dir(tmp_path, optuna_study=False)
    classes = pd.read_parquet(store.dir / "classes.parquet")
    names = [f"women's-long-sleeve-knitted-sweater-{c}" for c in range(rt.NUM_CLASSES)]
    classes["class_name"] = names
    write_table(store.dir / "classes.parquet", classes)
    figure = figures(render(ResultsView.of(store), "class_f1"))[0].plotly
    assert set(figure.layout.xaxis.ticktext) == set(names) and figure.layout.xaxis.automargin is True


def test_human_section_is_left_out_with_the_reason_when_every_test_row_is_human_labelled(tmp_path):
    """The embedded dataset's test split is all human-labelled: the section said 'human − all = 0.00'
    for every configuration; now it says why there is nothing to compare."""
    store = rt.build_runs_dir(tmp_path, optuna_study=False)
    frame = pd.read_parquet(store.results_path)
    frame["test_acc_human"] = frame["test_accuracy"]
    write_table(store.results_path, frame)
    section = render(ResultsView.of(store), "human")
    assert not section.blocks and "every test row is human-labelled" in section.missing
    assert "synth" in section.missing
