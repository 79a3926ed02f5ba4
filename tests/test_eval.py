"""``fusionzoo eval`` end to end on the embedded dataset: rows, resume (also after SIGKILL), raw
protocols through the feature cache, efficiency once per key, train-time protocols, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fusionzoo.cli.bench import bench
from fusionzoo.cli.eval import eval_cmd
from fusionzoo.evaluation.tables import EvalTables
from fusionzoo.results.store import ResultsStore

pytestmark = pytest.mark.slow  # end to end: benches and evaluates on the embedded dataset

ROOT = Path(__file__).resolve().parents[1]
BENCH = ["--fusions", "concat_mlp", "--seeds", "0,1", "--epochs", "2", "--dim", "16", "--batch-size", "64",
         "--data-option", "size=600", "--device", "cpu"]  # fmt: skip
SLOW_PLUGIN = '''
import time
from fusionzoo.protocols.base import register_protocol
from fusionzoo.protocols.feature_noise import FeatureNoise

@register_protocol
class SlowNoise(FeatureNoise):
    """feature_noise that sleeps per batch (to kill an evaluation in the middle)."""
    name = "slow_noise"
    def apply(self, batch, level, generator):
        time.sleep(0.4)
        return super().apply(batch, level, generator)
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    old = {k: os.environ.get(k) for k in ("FUSIONZOO_DATA", "FUSIONZOO_CACHE")}
    os.environ["FUSIONZOO_DATA"] = str(root / "data")
    os.environ.pop("FUSIONZOO_CACHE", None)
    yield root
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def runs(env):
    out = env / "runs"
    result = CliRunner().invoke(bench, [*BENCH, "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert list((out / "inputs").glob("*.json")), "the bench records each dataset's inputs for eval"
    return out


def invoke(*args):
    return CliRunner().invoke(eval_cmd, [str(a) for a in args], catch_exceptions=False)


def test_eval_rows_level_zero_is_clean_and_a_rerun_evaluates_nothing(runs):
    result = invoke(runs, "--protocols", "missing_image:rates=0;0.5;1,missing_text:rates=0;1", "--efficiency")
    assert result.exit_code == 0, result.output
    store = ResultsStore(runs)
    table, results = EvalTables(store).robustness(), store.load()
    assert len(results) == 6  # concat_mlp, image_only, text_only × 2 seeds
    assert len(table) == 6 * (3 + 2) and table["eval_fingerprint"].is_unique
    required = {"run_id", "config_id", "dataset", "fusion", "head", "seed", "protocol", "protocol_name",
                "stage", "level", "train_protocol", "eval_fingerprint", "test_accuracy", "test_macro_f1"}  # fmt: skip
    assert required <= set(table.columns)
    clean = table[table["level"] == 0].merge(results, on="run_id", suffixes=("", "_run"))
    for column in [c for c in table.columns if c.startswith("test_")]:
        assert np.array_equal(clean[column].to_numpy(), clean[f"{column}_run"].to_numpy(), equal_nan=True)
    image_only = table[(table["fusion"] == "image_only") & (table["protocol_name"] == "missing_text")]
    assert image_only.groupby("run_id")["test_accuracy"].nunique().eq(1).all()  # ignores the text
    gone = table[(table["fusion"] == "image_only") & (table["protocol_name"] == "missing_image")]
    assert (
        gone[gone["level"] == 1]["test_accuracy"].to_numpy()
        < gone[gone["level"] == 0]["test_accuracy"].to_numpy()
    ).all()
    efficiency = EvalTables(store).efficiency()
    assert len(efficiency) == 3 and efficiency["efficiency_key"].is_unique  # once per config, not per seed
    again = invoke(runs, "--protocols", "missing_image:rates=0;0.5;1,missing_text:rates=0;1", "--efficiency")
    assert "eval: 0 robustness rows evaluated, 30 reused; efficiency: 0 measured, 6 reused" in again.output
    more = invoke(runs, "--protocols", "missing_image:rates=0;0.25;0.5;1")
    assert "eval: 6 robustness rows evaluated, 18 reused" in more.output  # only the new level


def test_leaderboard_shows_and_ranks_by_the_evaluation_columns(runs):
    from rich.console import Console

    from fusionzoo import registry
    from fusionzoo.report.base import ResultsView

    invoke(runs, "--protocols", "missing_image:rates=0;0.5;1", "--efficiency")
    console = Console(width=250, record=True)
    summary = registry.create("reporter", "leaderboard").render(
        ResultsView.of(ResultsStore(runs), None, "test_gflops_forward"), "terminal", console=console
    )
    text = console.export_text()
    header = " ".join(text.split("┡")[0].replace("┃", " ").split())  # a header may wrap onto two lines
    assert "rel. robust." in header and "(missing_image)" in header and "GFLOPs" in header
    assert "latency" in header and "ms" in header
    assert summary["mean"].is_monotonic_increasing  # a min metric ranks lowest first


def test_raw_protocols_are_encoded_once_into_the_cache(runs, env):
    spec = "image_corruption:corruption=gaussian_noise,severities=0;5,text_typos:kind=swap,rates=0;1"
    result = invoke(runs, "--protocols", spec)
    assert result.exit_code == 0, result.output
    assert result.output.count("encoded") >= 2
    table = EvalTables(ResultsStore(runs)).robustness()
    raw = table[table["protocol_name"].isin(["image_corruption", "text_typos"])]
    assert len(raw) == 6 * 4
    text_only = raw[(raw["fusion"] == "text_only") & (raw["protocol_name"] == "image_corruption")]
    assert text_only.groupby("run_id")["test_accuracy"].nunique().eq(1).all()
    image_only = raw[(raw["fusion"] == "image_only") & (raw["protocol_name"] == "text_typos")]
    assert image_only.groupby("run_id")["test_accuracy"].nunique().eq(1).all()
    entries = [
        p for p in (env / "data" / "features").iterdir() if p.name.startswith("synth-test-") and p.is_dir()
    ]
    assert len(entries) == 3  # clean test + one per perturbed level
    # a new seed of the same protocol is another perturbation; the same one comes from the cache
    again = invoke(runs, "--protocols", "text_typos:kind=swap,rates=0;1,seed=1")
    assert "encoded" in again.output
    reused = invoke(
        runs, "--protocols", "text_typos:kind=swap,rates=0;1,seed=1,image_corruption:severities=0;5"
    )
    assert "encoding" not in reused.output


def test_sigkill_mid_eval_keeps_finished_rows_and_the_rerun_does_the_rest(runs, env):
    plugin = env / "slow_plugin.py"
    plugin.write_text(SLOW_PLUGIN)
    command = [sys.executable, "-m", "fusionzoo.cli", "eval", str(runs), "--plugin", str(plugin),
               "--protocols", "slow_noise:sigmas=0;1;2", "--jobs", "2"]  # fmt: skip
    process_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, env=process_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = ResultsStore(runs)
    deadline = time.time() + 240
    written = 0
    while time.time() < deadline and process.poll() is None:
        table = EvalTables(store).robustness()
        written = int((table["protocol_name"] == "slow_noise").sum()) if len(table) else 0
        if written:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 0 < written < 6 * 3, "the kill did not land mid-evaluation"
    table = EvalTables(store).robustness()
    kept = set(table.loc[table["protocol_name"] == "slow_noise", "eval_fingerprint"])
    assert len(kept) % 3 == 0  # whole (run, protocol) groups only
    done = subprocess.run(command, env=process_env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{6 * 3 - len(kept)} robustness rows evaluated, {len(kept)} reused" in " ".join(
        done.stdout.split()
    )
    table = EvalTables(store).robustness()
    assert table["eval_fingerprint"].is_unique and int((table["protocol_name"] == "slow_noise").sum()) == 18
    assert kept <= set(table["eval_fingerprint"])


def test_train_time_protocol_is_part_of_the_run_identity(runs):
    args = [
        *BENCH,
        "--out",
        str(runs),
        "--seeds",
        "0",
        "--no-unimodal",
        "--train-protocols",
        "missing_image@0.5",
    ]
    result = CliRunner().invoke(bench, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "train missing_image:imputation=mask,seed=0@0.5" in result.output
    frame = ResultsStore(runs).load()
    robust = frame[frame["config"].map(lambda c: json.loads(c).get("train_protocol", "")) != ""]
    assert len(robust) == 1
    plain = frame[
        (frame["fusion"] == "concat_mlp")
        & (frame["seed"] == 0)
        & (frame["run_id"] != robust["run_id"].iloc[0])
    ]
    assert robust["config_hash"].iloc[0] != plain["config_hash"].iloc[0]
    invoke(runs, "--protocols", "missing_image:rates=0;1")
    rows = EvalTables(ResultsStore(runs)).robustness()
    assert set(rows.loc[rows["run_id"] == robust["run_id"].iloc[0], "train_protocol"]) == {
        "missing_image:imputation=mask,seed=0@0.5"
    }


def test_bad_input_fails_before_any_work(runs, tmp_path):
    typo = CliRunner().invoke(eval_cmd, [str(runs), "--protocols", "missing_imag"])
    assert typo.exit_code == 2 and "missing_image" in typo.output
    nothing = CliRunner().invoke(eval_cmd, [str(runs)])
    assert nothing.exit_code == 2 and "nothing to evaluate" in nothing.output
    train_only = CliRunner().invoke(eval_cmd, [str(runs), "--protocols", "label_noise"])
    assert train_only.exit_code == 2 and "train-time protocol" in train_only.output
    empty = CliRunner().invoke(eval_cmd, [str(tmp_path), "--protocols", "missing_image"])
    assert empty.exit_code == 2 and "run fusionzoo bench first" in empty.output
    bad_train = CliRunner().invoke(
        bench, [*BENCH, "--out", str(runs), "--train-protocols", "image_corruption@1"]
    )
    assert bad_train.exit_code == 2 and "cannot be used at training time" in bad_train.output


def test_changed_data_is_refused_not_evaluated(runs, tmp_path):
    import shutil

    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    for path in (copy / "inputs").glob("*.json"):
        payload = json.loads(path.read_text())
        payload["options"]["data"] = {"size": 700}
        path.write_text(json.dumps(payload))
    before = len(EvalTables(ResultsStore(copy)).robustness())
    result = CliRunner().invoke(eval_cmd, [str(copy), "--protocols", "missing_image:rates=0;0.3"])
    assert result.exit_code == 1 and "the data changed since these runs were trained" in result.output
    assert len(EvalTables(ResultsStore(copy)).robustness()) == before


JOBS_PROTOCOLS = "missing_image:rates=0;0.5;1,feature_noise:sigmas=0;1,text_typos:kind=swap,rates=0;0.5;1"


def _rows(runs_dir: Path) -> pd.DataFrame:
    table = EvalTables(ResultsStore(runs_dir)).robustness()
    return table.sort_values("eval_fingerprint").reset_index(drop=True)


def test_jobs_2_gives_the_rows_of_jobs_1_bit_for_bit(runs, tmp_path):
    """Token protocols and a raw one (its levels are separate tasks on re-encoded test splits), in two
    worker processes, equal the in-process evaluation; every (run, protocol) is recorded whole."""
    import shutil

    one, two = tmp_path / "one", tmp_path / "two"
    for copy in (one, two):
        shutil.copytree(runs, copy)
        (copy / "robustness.parquet").unlink(missing_ok=True)
    first = invoke(one, "--protocols", JOBS_PROTOCOLS, "--jobs", "1")
    assert first.exit_code == 0, first.output
    assert "pool:" not in first.output
    second = invoke(two, "--protocols", JOBS_PROTOCOLS, "--jobs", "2")
    assert second.exit_code == 0, second.output
    assert "pool: 2 run(s) at once" in second.output
    a, b = _rows(one), _rows(two)
    n = int((ResultsStore(one).load()["status"] == "ok").sum())
    assert len(a) == n * (3 + 2 + 3) and a["eval_fingerprint"].is_unique
    pd.testing.assert_frame_equal(a, b)
    assert f"eval: {n * 8} robustness rows evaluated, 0 reused" in " ".join(second.output.split())


def test_a_failing_evaluation_task_is_reported_and_the_others_recorded(runs, tmp_path):
    import shutil

    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    (copy / "robustness.parquet").unlink(missing_ok=True)
    results = ResultsStore(copy).load()
    broken = str(results["run_id"].iloc[0])
    (ResultsStore(copy).checkpoint_dir(broken) / "model.safetensors").write_bytes(b"not safetensors")
    result = CliRunner().invoke(
        eval_cmd, [str(copy), "--protocols", "missing_image:rates=0;1", "--jobs", "2"]
    )
    assert result.exit_code == 1, result.output
    assert "evaluation failed" in result.output and "could not be evaluated" in result.output
    rows = _rows(copy)
    assert len(rows) == (len(results[results["status"] == "ok"]) - 1) * 2 and broken not in set(
        rows["run_id"]
    )


def test_a_real_data_bench_evaluates_its_linear_probe_floor_and_exits_0(tmp_path):
    """A non-demo dataset (a CSV with tiny offline encoders) puts the linear probe in the grid; eval
    scores the probe under the protocols from its saved checkpoint (level 0 = its recorded test
    metrics) and exits 0; --jobs 2 gives the same rows."""
    import shutil

    sys.path.insert(0, str(ROOT / "tests"))
    from launch_helpers import tiny_encoders

    tiny_encoders(tmp_path)
    csv = tmp_path / "glami" / "data.csv"
    frame = pd.read_csv(csv)
    frame["image_path"] = [str(Path(p).relative_to(csv.parent)) for p in frame["image_path"]]
    frame.to_csv(csv, index=False)
    out = tmp_path / "runs"
    args = ["--dataset", "csv", "--data-option", f"csv={csv}", "--data-option", "image_col=image_path",
            "--image-encoder", f"timm:{tmp_path / 'vit'}", "--text-encoder", f"hf:{tmp_path / 'bert'}",
            "--data-dir", str(tmp_path / "data"), "--fusions", "concat_mlp", "--seeds", "0", "--epochs", "2",
            "--dim", "16", "--batch-size", "8", "--device", "cpu", "--jobs", "1", "--out", str(out)]  # fmt: skip
    benched = CliRunner().invoke(bench, args, catch_exceptions=False)
    assert benched.exit_code == 0, benched.output
    results = ResultsStore(out).load()
    probes = results[results["fusion"].str.startswith("linear_probe")]
    assert len(probes) == 3 and (probes["status"] == "ok").all()  # image, text, both: the floor is on
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    protocols = "missing_image:rates=0;1,feature_noise:sigmas=0.5;1"  # the second grid lacks level 0
    result = invoke(out, "--protocols", protocols, "--efficiency")
    assert result.exit_code == 0, result.output
    assert "could not be evaluated" not in result.output and "no checkpoint" not in result.output
    assert "level 0 (the clean test set) added" in " ".join(result.output.split())
    table = EvalTables(ResultsStore(out)).robustness()
    assert len(table) == len(results) * (2 + 3)
    floor = table[table["fusion"] == "linear_probe:features=text"]
    assert sorted(floor["level"]) == [0.0, 0.0, 0.5, 1.0, 1.0]
    clean = table[table["level"] == 0].merge(results, on="run_id", suffixes=("", "_run"))
    for column in [c for c in table.columns if c.startswith("test_")]:
        assert np.array_equal(clean[column].to_numpy(), clean[f"{column}_run"].to_numpy(), equal_nan=True)
    text_probe = floor[floor["protocol_name"] == "missing_image"].set_index("level")["test_accuracy"]
    assert text_probe[0.0] == text_probe[1.0]  # the text-only probe ignores the images
    again = invoke(copy, "--protocols", protocols, "--jobs", "2")
    assert again.exit_code == 0, again.output
    pd.testing.assert_frame_equal(_rows(out), _rows(copy))


def test_the_reference_is_checked_first_recorded_and_named(runs, tmp_path):
    import shutil

    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    bad = tmp_path / "bad.toml"
    bad.write_text('[eval]\nreference = "concat_mpl"\nprotocols = ["missing_image:rates=0;1"]\n')
    settings = copy / "eval.json"  # an earlier test of the module's runs may have recorded one
    before = settings.read_bytes() if settings.exists() else None
    refused = CliRunner().invoke(eval_cmd, [str(copy), "--config", str(bad)])
    assert refused.exit_code == 2 and "concat_mpl" in refused.output and "Traceback" not in refused.output
    assert (settings.read_bytes() if settings.exists() else None) == before  # refused before any work
    good = tmp_path / "good.toml"
    good.write_text('[eval]\nreference = "image_only"\nprotocols = ["missing_image:rates=0;1"]\n')
    result = invoke(copy, "--config", good)
    assert result.exit_code == 0, result.output
    assert EvalTables(ResultsStore(copy)).reference() == "image_only"
    assert "to image_only of the same settings: image_only + mlp" in " ".join(result.output.split())
