"""The report as a person sees it: a small bench with ``--eval robustness,efficiency --report`` (synth,
2 fusions, 2 seeds, two missing-modality protocols), the tables it records (provenance, classes,
diagnostics, robustness, efficiency), the page in a real headless Chromium with the network cut off,
and ``--mlflow`` against a local SQLite backend."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fusionzoo.cli import main
from fusionzoo.cli.bench import bench

TINY_DATA = ["size=240", "n_colours=2", "n_shapes=1", "n_genders=1", "n_materials=2"]
TINY_RUN = ["--epochs", "2", "--dim", "16", "--batch-size", "32", "--no-unimodal"]
PROTOCOLS = "missing_image:rates=0;0.5;1,missing_text:rates=0;1"


def _args(root, out) -> list[str]:
    args = ["--data-dir", str(root / "data")]
    for option in TINY_DATA:
        args += ["--data-option", option]
    return [*args, "--seeds", "0,1", *TINY_RUN, "--out", str(out)]


@pytest.fixture(scope="module")
def benched(tmp_path_factory):
    """A tiny bench that evaluates robustness and efficiency, then writes the report."""
    root = tmp_path_factory.mktemp("report-bench")
    out = root / "runs"
    result = CliRunner().invoke(
        bench,
        [
            *_args(root, out),
            "--fusions",
            "fluid:queries=4,layers=1,heads=2,concat_mlp",
            "--eval",
            "robustness,efficiency",
            "--protocols",
            PROTOCOLS,
            "--report",
        ],
    )
    assert result.exit_code == 0, result.output
    return root, out, result.output


@pytest.mark.slow
def test_bench_report_flag_writes_the_report_and_the_tables_it_needs(benched):
    _, out, output = benched
    assert f"report: {out / 'report.html'}" in output.replace("\n", "")
    runs = pd.read_parquet(out / "results.parquet")
    assert len(runs) == 4 and set(runs["status"]) == {"ok"}
    provenance = pd.read_parquet(out / "provenance.parquet")
    assert len(provenance) == 1 and set(json.loads(provenance["run_ids"].iloc[0])) == set(runs["run_id"])
    assert (
        "synth" in json.loads(provenance["datasets"].iloc[0])
        and provenance["packages"].str.contains("torch").all()
    )
    machine = json.loads(
        provenance["machine"].iloc[0]
    )  # what CPU numbers reproduce on (docs/benchmarking.md)
    assert machine["cpu_model"] and machine["cpu_capability"] and machine["torch_threads"] >= 1
    classes = pd.read_parquet(out / "classes.parquet")
    assert (
        set(classes["data_fingerprint"]) == set(runs["data_fingerprint"]) and classes["train_count"].sum() > 0
    )
    assert set(classes["bucket"]) <= {"head", "medium", "tail"}
    diagnostics = pd.read_parquet(out / "diagnostics.parquet")
    assert set(diagnostics.loc[diagnostics["kind"] == "reliability", "run_id"]) == set(runs["run_id"])
    diagnostics = diagnostics[diagnostics["kind"] != "reliability"]  # every run's reliability bins
    fluid = set(runs.loc[runs["fusion"].str.startswith("fluid"), "run_id"])
    assert set(diagnostics["run_id"]) == fluid  # concat_mlp + mlp returns no extras
    assert {"fusion.gate", "head.expert_counts"} <= set(diagnostics["name"])
    page = (out / "report.html").read_text()
    robustness = pd.read_parquet(out / "robustness.parquet")
    assert len(robustness) == 4 * (3 + 2) and set(robustness["run_id"]) == set(runs["run_id"])
    efficiency = pd.read_parquet(out / "efficiency.parquet")
    assert len(efficiency) == 2 and (efficiency["gflops_forward"] > 0).all()
    for section in (
        "leaderboard_table",
        "accuracy",
        "significance",
        "class_f1",
        "curves",
        "robustness",
        "pareto",
        "diagnostics",
        "provenance",
    ):
        assert f'id="sec-{section}"' in page, section
    assert "Not shown: Robustness" not in page and "Not shown: Cost" not in page
    # the embedded dataset's test split is all human-labelled: no table of zeros, the reason instead
    assert "Not shown: Human-labelled subset vs all" in page and "every test row is human-labelled" in page
    # the two Holm families are both named (the leaderboard's, the pairwise section's)
    assert "Holm-adjusted over the comparisons with the best" in page and "p (Holm, all pairs)" in page
    assert "p (Holm, vs best)" in page and "cpu_capability" in page
    # the report's numbers are the evaluation's: R per configuration = the mean of the runs' rel_robust
    from fusionzoo.evaluation.views import run_extras
    from fusionzoo.report.base import ResultsView
    from fusionzoo.report.common import efficiency_by_config
    from fusionzoo.report.robustness import robustness_summary
    from fusionzoo.results.store import ResultsStore

    view = ResultsView.of(ResultsStore(out))
    extras = pd.concat([view.ok[["config_id"]], run_extras(view.store, view.ok)], axis=1)
    summary = robustness_summary(view)
    image = summary[summary["protocol_name"] == "missing_image"].set_index("config_id")
    expected = extras.groupby("config_id")["rel_robust_missing_image"].mean()
    assert np.allclose(image.loc[expected.index, "relative"], expected)
    assert set(efficiency_by_config(view)["efficiency_key"]) == set(efficiency["efficiency_key"])


@pytest.mark.slow
def test_report_opens_offline_in_headless_chromium(benched, tmp_path):
    playwright = pytest.importorskip(
        "playwright.sync_api", reason="needs playwright (pip install playwright)"
    )
    from PIL import Image

    from fusionzoo.report.browser import chromium_executable, offline_page

    if chromium_executable() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium for the browser test (.ci/run)")
        pytest.skip("no chromium executable (apt-get install chromium)")
    assert playwright is not None
    _, out, _ = benched
    result = CliRunner().invoke(main, ["report", str(out)])
    assert result.exit_code == 0, result.output
    with offline_page(out / "report.html") as offline:
        page = offline.page
        plots = page.evaluate(
            "Array.from(document.querySelectorAll('.fz-plot')).map(p => { const r = p.getBoundingClientRect();"
            " return [r.width, r.height, !!p.querySelector('.main-svg')]; })"
        )
        images = page.evaluate(
            "Array.from(document.querySelectorAll('.fz-static img')).map(i => [i.complete, i.naturalWidth])"
        )
        sections = page.evaluate("Array.from(document.querySelectorAll('main section')).map(s => s.id)")
        # per-class figure: every class label drawn whole, inside its plot (not cut by the margin)
        cut_labels = page.evaluate(
            "Array.from(document.querySelectorAll('#sec-class_f1 .js-plotly-plot')).flatMap(p => {"
            " const box = p.getBoundingClientRect();"
            " return Array.from(p.querySelectorAll('.xtick text')).filter(t => {"
            " const r = t.getBoundingClientRect();"
            " return r.bottom > box.bottom + 1 || r.left < box.left - 1 || r.right > box.right + 1; })"
            ".map(t => t.textContent); })"
        )
        class_labels = page.evaluate(
            "Array.from(document.querySelectorAll('#sec-class_f1 .xtick text')).map(t => t.textContent)"
        )
        page.click("table.fz-table th:nth-child(5)")  # sort the leaderboard by accuracy
        sorted_as = page.evaluate(
            "document.querySelector('table.fz-table th:nth-child(5)').getAttribute('aria-sort')"
        )
        page.click(".fz-toggle")
        static_shown = page.evaluate("getComputedStyle(document.querySelector('.fz-static')).display")
        shot = page.screenshot(full_page=True)
        errors, attempted = list(offline.errors), list(offline.blocked)
        # the route really blocks: a request the page tries now is recorded and fails
        page.evaluate("fetch('https://example.invalid/x').catch(() => null)")
        page.wait_for_timeout(300)
        probe = set(offline.blocked)
    assert not errors, errors
    assert attempted == [], attempted  # the report itself asked for nothing outside the file
    assert probe == {"https://example.invalid/x"}, probe
    assert len(plots) >= 10 and all(w > 100 and h > 100 and drawn for w, h, drawn in plots), plots
    assert len(images) == len(plots) and all(done and width > 100 for done, width in images), images
    assert {"sec-robustness", "sec-pareto", "sec-diagnostics", "sec-leaderboard_table"} <= set(sections)
    assert sorted_as == "ascending" and static_shown == "block"
    names = set(pd.read_parquet(out / "classes.parquet")["class_name"])
    assert class_labels and set(class_labels) <= names and cut_labels == [], (class_labels, cut_labels)
    image = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=float)
    assert image.shape[0] > 3000 and image.std() > 20  # a long page with content, not blank
    (tmp_path / "report.png").write_bytes(shot)
    # scripts off: every figure falls back to its static PNG, shown with a size
    with offline_page(out / "report.html", javascript=False) as offline:
        shown = offline.page.evaluate(
            "Array.from(document.querySelectorAll('.fz-static img')).map(i => i.getBoundingClientRect().height)"
        )
        hidden = offline.page.evaluate(
            "Array.from(document.querySelectorAll('.fz-plot')).every(p => getComputedStyle(p).display === 'none')"
        )
        assert offline.blocked == [] and offline.errors == []
    assert len(shown) == len(plots) and min(shown) > 100 and hidden


@pytest.mark.slow
def test_mlflow_logs_each_run_as_a_child_of_one_bench_run(benched, tmp_path):
    pytest.importorskip("mlflow", reason="needs the mlflow extra")
    from mlflow.tracking import MlflowClient

    root, _, _ = benched
    out = tmp_path / "runs"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(bench, [*_args(root, out), "--fusions", "concat_mlp", "--mlflow", uri])
    assert result.exit_code == 0, result.output
    client = MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name.startswith("fusionzoo:")]
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 2
    child = children[0]
    assert child.data.params["fusion"] == "concat_mlp" and child.data.params["config.epochs"] == "2"
    assert len(client.get_metric_history(child.info.run_id, "val_accuracy")) == 2  # one per epoch
    assert 0 <= child.data.metrics["test_accuracy"] <= 1
    artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
    assert any(a.endswith(".npy") for a in artifacts) and "config.json" in artifacts
    assert (out / "mlflow-artifacts").is_dir()  # a local backend keeps artifacts in the runs directory
    # rerun: both runs reused, logged again from the tables as reused children of a new bench run
    again = CliRunner().invoke(bench, [*_args(root, out), "--fusions", "concat_mlp", "--mlflow", uri])
    assert again.exit_code == 0, again.output
    reused = [
        r
        for r in client.search_runs([experiment.experiment_id])
        if r.data.tags.get("fusionzoo.reused") == "true"
    ]
    assert len(reused) == 2


def test_bad_mlflow_uri_fails_before_any_data_work(tmp_path):
    pytest.importorskip("mlflow", reason="needs the mlflow extra")
    out = tmp_path / "runs"
    result = CliRunner().invoke(
        bench,
        [
            "--fusions",
            "concat_mlp",
            "--data-dir",
            str(tmp_path / "data"),
            "--out",
            str(out),
            "--mlflow",
            "bogus://nowhere",
        ],
    )
    assert result.exit_code == 1 and "--mlflow bogus://nowhere" in result.output, result.output
    assert not (tmp_path / "data").exists() and not (out / "results.parquet").exists()


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_mlflow_server_is_said_at_once_with_its_password_masked(tmp_path):
    import subprocess
    import sys
    import time

    url = f"http://me:secret@127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "fusionzoo", "bench", "--fusions", "concat_mlp", "--data-dir",
         str(tmp_path / "data"), "--out", str(tmp_path / "runs"), "--mlflow", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1 and time.monotonic() - started < 60, done.stderr  # MLflow alone: ~250 s
    assert f"--mlflow {url.replace('secret', '***')}: cannot reach" in done.stderr
    assert "secret" not in done.stdout + done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()


def test_a_reachable_mlflow_server_gets_short_http_limits(monkeypatch):
    import socket

    from fusionzoo.bench.tracking import HTTP_LIMITS, check_server

    for name in HTTP_LIMITS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")  # what the user set stays
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        check_server(f"http://127.0.0.1:{server.getsockname()[1]}")
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == HTTP_LIMITS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
