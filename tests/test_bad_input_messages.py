"""Bad input and faults found by the attack of issue 18: typed dataset options, loss weights no run
uses, error messages whose sentences ran together, ``--on-bad-image fail`` naming files before
encoding, and damaged tables of a runs directory named before anything is trained."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from fusionzoo import registry
from fusionzoo.cli import main
from fusionzoo.cli.bench import bench
from fusionzoo.data.base import DataError
from fusionzoo.datasets import load_dataset


def _bench(tmp_path, *args: str):
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(
        bench, ["--data-dir", str(data_dir), "--out", str(tmp_path / "runs"), "--dry-run", *args]
    )
    return result, data_dir


# ------------------------------------------------------------------- dataset options and loss weights
LOSSES = "Its losses: ce, contrastive, load_balance, router_z (ce: the classification loss"


@pytest.mark.parametrize(
    ("args", "messages"),
    [
        (["--data-option", "size=abc"], ["synth option size='abc': input should be a valid integer"]),
        (["--data-option", "size=3.5"], ["synth option size=3.5: input should be a valid integer, got a number"]),
        (["--data-option", "zipf=steep"], ["synth option zipf='steep': input should be a valid number"]),
        (["--data-option", "limit=ten"], ["synth option limit='ten'"]),
        (["--data-option", "check_images=maybe"], ["synth option check_images='maybe': input should be a valid"]),
        (["--fusions", "fluid,film", "--loss-weights", "contrastve=0.9"],
         ["a loss named 'contrastve' (did you mean 'contrastive'?). Its losses: ", LOSSES]),
        (["--fusions", "fluid,film", "--loss-weights", "bogus=1"], ["a loss named 'bogus'. Its losses: ", LOSSES]),
    ],
)  # fmt: skip
def test_a_wrong_data_option_or_loss_weight_is_a_usage_error_before_any_data(tmp_path, args, messages):
    result, data_dir = _bench(tmp_path, "--fusions", "film", *args)
    assert result.exit_code == 2 and all(m in result.output for m in messages), result.output
    assert "Traceback" not in result.output and not data_dir.exists()


def test_data_options_are_converted_to_their_declared_types(tmp_path):
    backend = registry.create("dataset", "synth")
    converted = backend.check_options({"size": "240", "text_fields": ["name"], "geos": "cz,sk", "zipf": 1})
    assert converted == {"size": 240, "text_fields": ("name",), "geos": "cz,sk", "zipf": 1}
    assert isinstance(converted["size"], int)
    splits = load_dataset("synth", data_dir=str(tmp_path), size="240", image_size=16)  # a TOML string
    assert len(splits.train) + len(splits.val) + len(splits.test) <= 240
    with pytest.raises(DataError, match=r"csv option test_fraction='half'"):
        registry.create("dataset", "csv").check_options({"test_fraction": "half"})


# --------------------------------------------------------------------------------------- loss weights
def test_a_loss_weight_is_checked_against_the_whole_grid(tmp_path):
    # film@linear has no aux loss, fluid (moe head) has contrastive: the weight is used by some run
    ok, _ = _bench(
        tmp_path, "--fusions", "fluid,film", "--heads", "linear", "--loss-weights", "contrastive=0.5"
    )
    assert ok.exit_code == 0, ok.output
    # without fluid no run has it; fluid:contrastive=false returns no contrastive loss either
    for fusions in ("film,concat_mlp", "fluid:contrastive=false"):
        bad, _ = _bench(
            tmp_path, "--fusions", fusions, "--heads", "linear", "--loss-weights", "contrastive=0.5"
        )
        assert bad.exit_code == 2 and "no run of this grid has a loss named 'contrastive'" in bad.output
        assert "Its losses: ce (ce: the classification loss" in bad.output


def test_tune_checks_its_data_options_before_loading_data(tmp_path):
    for option, message in (
        ("size=abc", "synth option size='abc'"),
        ("sise=3", "unknown synth option(s) sise"),
    ):
        result = CliRunner().invoke(
            main,
            ["tune", "--fusion", "film", "--data-option", option, "--data-dir", str(tmp_path / "d"),
             "--storage", "memory"],
        )  # fmt: skip
        assert result.exit_code == 2 and message in result.output, result.output  # was a DataError traceback
    assert not (tmp_path / "d").exists()


def test_tune_checks_its_loss_weights_before_loading_data(tmp_path):
    result = CliRunner().invoke(
        main,
        ["tune", "--fusion", "film", "--loss-weights", "load_balance=0.1", "--data-dir", str(tmp_path / "d"),
         "--storage", "memory"],
    )  # fmt: skip
    assert result.exit_code == 2 and "a loss named 'load_balance'" in result.output, result.output
    assert "Its losses: ce (ce: the classification loss" in result.output  # film + its natural head (mlp)
    assert not (tmp_path / "d").exists()


# ---------------------------------------------------------------------------------------- punctuation
def test_an_unknown_plugin_name_reads_as_separate_sentences():
    with pytest.raises(registry.RegistryError) as caught:
        registry.get_entry("fusion", "flim")
    names = ", ".join(registry.list_fusions())
    assert str(caught.value) == (
        f"fusion 'flim' is not registered (did you mean 'film', 'fluid' or 'lmf'?). Registered fusions: {names}"
    )
    with pytest.raises(registry.RegistryError) as caught:
        registry.get_entry("fusion", "xyzzy")
    assert str(caught.value) == f"fusion 'xyzzy' is not registered. Registered fusions: {names}"


def test_the_command_line_shows_the_same_sentences(tmp_path):
    result, _ = _bench(tmp_path, "--fusions", "flim,fluid@mooe")
    assert result.exit_code == 2
    assert (
        "fusion 'flim' is not registered (did you mean 'film', 'fluid' or 'lmf'?). Registered fusions: "
        in (result.output)
    )
    assert "\nhead 'mooe' is not registered (did you mean 'moe'?). Registered heads: linear, mlp, moe" in (
        result.output
    )
    assert "?." not in result.output and "registered Registered" not in result.output
    launcher = CliRunner().invoke(bench, ["--launcher", "raay", "--dry-run"])
    assert (
        "launcher 'raay' is not registered (did you mean 'ray'?). Registered launchers: " in launcher.output
    )


# ------------------------------------------------------------------------------- --on-bad-image fail
def test_bench_on_bad_image_fail_names_the_files_before_encoding(tmp_path, tiny_model_dirs):
    import pandas as pd

    from fusionzoo.testing.tiny_splits import write_tiny_glami

    folder = tmp_path / "mine"
    frame = pd.read_csv(write_tiny_glami(folder, n=40, bad=(2, 5)))
    frame["image"] = "images/" + frame["image_path"].str.rsplit("/", n=1).str[-1]
    frame[["image", "text", "label"]].to_csv(folder / "mine.csv", index=False)
    result = CliRunner().invoke(
        bench,
        ["--dataset", "csv", "--data-option", f"csv={folder / 'mine.csv'}", "--data-dir", str(tmp_path / "data"),
         "--image-encoder", f"timm:{tiny_model_dirs['image']}", "--text-encoder", f"hf:{tiny_model_dirs['text']}",
         "--fusions", "concat_mlp", "--seeds", "0", "--epochs", "1", "--dim", "8", "--no-probe",
         "--out", str(tmp_path / "runs"), "--on-bad-image", "fail"],
    )  # fmt: skip
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "unreadable image(s) used by" in result.output and "nothing encoded" in result.output
    for name in ("2.jpg", "5.jpg"):  # both fall in train, val or test: every split is checked at once
        assert f"{folder.resolve() / 'images' / name} (not an image file PIL can read)" in result.output
    assert not list((tmp_path / "data" / "features").glob("csv-*"))  # no entry, no partial: nothing encoded


# --------------------------------------------------------------------------------- runs-dir tables
@pytest.mark.parametrize(
    "name", ["history", "diagnostics", "classes", "provenance", "robustness", "efficiency"]
)
def test_every_damaged_table_of_the_runs_directory_is_named_when_it_is_opened(tmp_path, name):
    import pandas as pd

    from fusionzoo.results.store import ResultsSchemaError, ResultsStore, write_table

    path = write_table(tmp_path / f"{name}.parquet", pd.DataFrame({"run_id": ["r0"], "value": [0.5]}))
    ResultsStore(tmp_path)  # readable: fine
    path.write_bytes(path.read_bytes()[:-30])  # truncated (a full disk, a copy cut short)
    with pytest.raises(ResultsSchemaError, match=rf"{name}.parquet is not a readable parquet table"):
        ResultsStore(tmp_path)


def test_a_truncated_history_stops_bench_before_training_not_after(tmp_path):
    data = ["--data-dir", str(tmp_path / "data")]
    for option in ("size=240", "n_colours=2", "n_shapes=1", "n_genders=1", "n_materials=2"):
        data += ["--data-option", option]
    run = [
        *data,
        "--out",
        str(tmp_path / "runs"),
        "--epochs",
        "1",
        "--dim",
        "8",
        "--no-unimodal",
        "--seeds",
        "0",
    ]
    first = CliRunner().invoke(bench, [*run, "--fusions", "concat_mlp"])
    assert first.exit_code == 0, first.output
    history = tmp_path / "runs" / "history.parquet"
    history.write_bytes(history.read_bytes()[: len(history.read_bytes()) // 2])
    results = (tmp_path / "runs" / "results.parquet").read_bytes()
    again = CliRunner().invoke(bench, [*run, "--fusions", "concat_mlp,film"])
    assert again.exit_code == 1 and isinstance(again.exception, SystemExit), again.output
    assert f"results file {history} is not a readable parquet table" in again.output
    assert "loading" not in again.output  # nothing loaded or trained (was: film trained, then lost)
    assert (tmp_path / "runs" / "results.parquet").read_bytes() == results


def test_a_misspelt_preset_gets_the_same_close_match():
    result = CliRunner().invoke(bench, ["--config", "quik", "--dry-run"])
    assert result.exit_code == 2
    assert "config file quik not found (did you mean 'quick'?); give a TOML file or a packaged preset: " in (
        result.output
    )
