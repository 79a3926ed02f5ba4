"""Runs of one dataset on two data versions (its data changed between two benches on one --out): the
report, the terminal leaderboard and eval's summaries show one version, name the other, never mix them."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import report_tables as rt
from click.testing import CliRunner
from rich.console import Console

from fusionzoo import registry
from fusionzoo.cli import main
from fusionzoo.report.base import ResultsView
from fusionzoo.results.store import ResultsStore, config_id_of, read_table, run_id_of, write_table
from fusionzoo.results.versions import VersionError, data_versions, pick_versions

OLD = "fp-old-version-0123"


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory) -> ResultsStore:
    """The hand-built runs (fingerprint fp-hand-built) plus an older data version on which film scored
    99% (it would rank best if the versions were mixed); the old rows finished a day earlier."""
    store = rt.build_runs_dir(tmp_path_factory.mktemp("versions"), optuna_study=False)
    parts = {**rt.identity("film", "mlp"), "data_fingerprint": OLD}
    parts["config_id"] = config_id_of({k: v for k, v in parts.items() if k != "config_id"})
    for seed in rt.SEEDS:
        store.record(
            {
                **parts,
                "seed": seed,
                "run_id": run_id_of(parts["config_id"], seed),
                "status": "ok",
                "test_accuracy": 0.99 - 0.001 * seed,
                "params": 1000,
                "train_time": 1.0,
                "config": json.dumps({"dim": 16}),
            }
        )
    frame = read_table(store.results_path)
    frame.loc[frame["data_fingerprint"] == OLD, "finished_at"] = "2020-01-01T00:00:00+00:00"
    write_table(store.results_path, frame)
    return store


def test_the_latest_version_is_shown_and_the_other_named(two_versions):
    runs = two_versions.load()
    versions = data_versions(runs)["synth"]
    assert [v.fingerprint for v in versions] == [rt.FINGERPRINT, OLD]  # newest first
    kept, shown, left_out = pick_versions(runs)
    assert set(kept["data_fingerprint"]) == {rt.FINGERPRINT} and [v.fingerprint for v in left_out] == [OLD]
    old, _, _ = pick_versions(runs, OLD[:8])
    assert set(old["data_fingerprint"]) == {OLD}
    with pytest.raises(VersionError, match="fp-hand-buil .* fp-old-versi"):
        pick_versions(runs, "nope")


def test_terminal_leaderboard_ranks_only_one_version_and_names_the_other(two_versions):
    console = Console(width=200, record=True)
    summary = registry.create("reporter", "leaderboard").render(
        ResultsView.of(two_versions), "terminal", console=console
    )
    text = " ".join(console.export_text().split())
    assert set(summary["data_fingerprint"]) == {rt.FINGERPRINT}
    assert summary.iloc[0]["fusion"].startswith("fluid")  # not the stale 99% film
    assert "99.00" not in text and "not shown (other data" in text and OLD[:12] in text
    assert f"--data-version {OLD[:12]}" in text


def test_report_cli_shows_the_latest_names_the_other_and_can_show_it(two_versions, tmp_path):
    runner = CliRunner()
    out = tmp_path / "latest.html"
    result = runner.invoke(main, ["report", str(two_versions.dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"note: synth: showing data version {rt.FINGERPRINT[:12]}" in " ".join(result.output.split())
    page = out.read_text()
    assert OLD[:12] in page and "99.00" not in page
    csv = tmp_path / "old.csv"
    old = runner.invoke(
        main,
        ["report", str(two_versions.dir), "--format", "csv", "--data-version", OLD[:6], "--out", str(csv)],
    )
    assert old.exit_code == 0, old.output
    frame = pd.read_csv(csv)
    assert list(frame["fusion"]) == ["film"] and set(frame["data_fingerprint"]) == {OLD}
    bad = runner.invoke(main, ["report", str(two_versions.dir), "--data-version", "zzz"])
    assert bad.exit_code == 2 and "no runs of data version 'zzz'" in " ".join(bad.output.split())


def test_eval_summaries_use_one_version_and_name_the_other(two_versions):
    from fusionzoo.evaluation.session import print_summaries

    console = Console(width=200, record=True)
    print_summaries(two_versions, console)
    text = " ".join(console.export_text().split())
    assert "not shown (other data" in text and OLD[:12] in text
