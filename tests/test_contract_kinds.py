"""The dataset, metric, protocol, reporter and launcher checkers of ``fusionzoo.testing`` catch each rule
they state: every throw-away plugin below breaks exactly one rule, and a good one passes."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score

from fusionzoo.datasets.base import DatasetBackend
from fusionzoo.datasets.csv import CsvDataset
from fusionzoo.launch.base import Launcher, execute_run
from fusionzoo.metrics.base import Metric
from fusionzoo.protocols.base import Protocol
from fusionzoo.report.base import Reporter
from fusionzoo.testing import (
    ContractError,
    check_dataset,
    check_launcher,
    check_metric,
    check_protocol,
    check_reporter,
)


def broken(check, target, rule, *args):
    with pytest.raises(ContractError) as info:
        check(target, *args)
    assert info.value.rule == rule, str(info.value)
    assert target.__name__ in str(info.value)
    return info.value


# ----------------------------------------------------------------------------------------------- datasets
class ToyDataset(CsvDataset):
    """The csv backend under another name, with a hook that damages what it loads."""

    name = "toy"

    @classmethod
    def option_names(cls):
        return CsvDataset.option_names()

    def load(self, **options):
        return self.damage(CsvDataset.load(self, **options))

    def damage(self, splits):
        return splits


class PositionalLoad(ToyDataset):
    def load(self, csv=None, **options):
        return CsvDataset.load(self, csv=csv, **options)


class ShadowsACommonOption(ToyDataset):
    @classmethod
    def option_names(cls):
        return [*CsvDataset.option_names(), "limit"]


class AcceptsAnyOption(ToyDataset):
    def check_options(self, options):
        pass


class NoExample(DatasetBackend):
    name = "no_example"

    def load(self, **common):
        raise AssertionError("never reached")


class LabelsOutOfRange(ToyDataset):
    def damage(self, splits):
        splits.test = splits.test.copy()
        splits.test.loc[0, "label"] = 99
        return splits


class SharedItemIds(ToyDataset):
    def damage(self, splits):
        splits.test = splits.test.copy()
        splits.test.loc[0, "item_id"] = splits.train["item_id"].iloc[0]
        return splits


class MissingColumn(ToyDataset):
    def damage(self, splits):
        splits.val = splits.val.drop(columns=["geo"])
        return splits


class ConstantFingerprint(ToyDataset):
    def damage(self, splits):
        splits.fingerprint = "always-the-same"
        return splits


class RandomFingerprint(ToyDataset):
    def damage(self, splits):
        splits.fingerprint = uuid.uuid4().hex
        return splits


class StatusRaises(ToyDataset):
    def status(self, **options):
        return f"rows: {options['csv']}"  # KeyError without the csv option


def test_a_good_dataset_backend_passes(tmp_path):
    check_dataset(ToyDataset, tmp_path)


@pytest.mark.parametrize(
    ("cls", "rule"),
    [
        (PositionalLoad, "load takes keyword-only options"),
        (ShadowsACommonOption, "option_names() are keyword-only load options"),
        (AcceptsAnyOption, "an unknown option is an error naming it"),
        (NoExample, "example(folder) writes a tiny dataset and returns its load options"),
        (LabelsOutOfRange, "labels are integers in 0..C-1"),
        (SharedItemIds, "item ids are disjoint across splits"),
        (MissingColumn, "splits have the COLUMNS"),
        (ConstantFingerprint, "the fingerprint changes when an option changes"),
        (RandomFingerprint, "the fingerprint is stable"),
        (StatusRaises, "status() returns a line without raising"),
    ],
)
def test_dataset_checker_names_the_broken_rule(cls, rule, tmp_path):
    broken(check_dataset, cls, rule, tmp_path)


# ------------------------------------------------------------------------------------------------ metrics
class GoodErrorRate(Metric):
    name = "error_rate"
    direction = "min"

    def compute(self, ctx):
        return {"error_rate": float(1 - accuracy_score(ctx.labels, ctx.preds))}


class ErrorRateDeclaredMax(GoodErrorRate):
    direction = "max"


class UpwardDirection(GoodErrorRate):
    direction = "up"


class RandomMetric(GoodErrorRate):
    def compute(self, ctx):
        return {"error_rate": float(np.random.default_rng().random())}


class UndeclaredColumn(GoodErrorRate):
    def compute(self, ctx):
        return {"error_rate": 0.5, "error_percent": 50.0}


class MissingDeclaredColumn(GoodErrorRate):
    columns = ("error_rate", "error_percent")


class HumanOnlyUnsafe(Metric):
    """Accuracy on human rows with sklearn, which raises on an empty subset."""

    name = "human_unsafe"

    def compute(self, ctx):
        human = ctx.meta["is_human"].to_numpy(dtype=bool)
        return {"human_unsafe": float(accuracy_score(ctx.labels[human], ctx.preds[human]))}


class InfiniteMetric(GoodErrorRate):
    def compute(self, ctx):
        return {"error_rate": float("inf")}


class SortsItsLabels(GoodErrorRate):
    def compute(self, ctx):
        ctx.labels.sort()
        return super().compute(ctx)


def test_a_good_metric_passes():
    check_metric(GoodErrorRate)


@pytest.mark.parametrize(
    ("cls", "rule"),
    [
        (ErrorRateDeclaredMax, "a perfect prediction scores at least as well as a random one (max)"),
        (UpwardDirection, "direction is max or min"),
        (RandomMetric, "compute is deterministic"),
        (UndeclaredColumn, "returned columns match the declared columns"),
        (MissingDeclaredColumn, "returns every declared column"),
        (HumanOnlyUnsafe, "NaN-safe on empty subsets (no human rows, no metadata, no buckets)"),
        (InfiniteMetric, "values are finite or NaN"),
        (SortsItsLabels, "compute leaves its inputs unchanged"),
    ],
)
def test_metric_checker_names_the_broken_rule(cls, rule):
    broken(check_metric, cls, rule)


# ---------------------------------------------------------------------------------------------- protocols
class ImageNoise(Protocol):
    """x + N(0, level²) on the image tokens (a copy; the generator alone draws the noise)."""

    name = "image_noise"
    stage = "test"

    def levels(self):
        return [0.0, 0.5, 1.0]

    def apply(self, batch, level, generator):
        out = dict(batch)
        noise = torch.randn(batch["image"].shape, generator=generator)
        out["image"] = batch["image"] + level * noise
        return out


class UnseededNoise(ImageNoise):
    def apply(self, batch, level, generator):
        return {**batch, "image": batch["image"] + level * torch.randn(batch["image"].shape)}


class NoisyAtZero(ImageNoise):
    def apply(self, batch, level, generator):
        return super().apply(batch, level + 0.1, generator)


class FloatMask(ImageNoise):
    def apply(self, batch, level, generator):
        return {**batch, "image_mask": batch["image_mask"].float()}


class DropsIndex(ImageNoise):
    def apply(self, batch, level, generator):
        return {k: v for k, v in batch.items() if k != "index"}


class TruncatesText(ImageNoise):
    def apply(self, batch, level, generator):
        return {**batch, "text": batch["text"][:, :2], "text_mask": batch["text_mask"][:, :2]}


class InPlaceNoise(ImageNoise):
    def apply(self, batch, level, generator):
        batch["image"].add_(level * torch.randn(batch["image"].shape, generator=generator))
        return dict(batch)


class LevelTwo(ImageNoise):
    def levels(self):
        return [0.0, -2.0]


class EvalStage(ImageNoise):
    stage = "eval"


class NaNImages(ImageNoise):
    def apply(self, batch, level, generator):
        out = super().apply(batch, level, generator)
        if level > 0:
            out["image"] = out["image"].masked_fill(
                torch.ones_like(out["image"], dtype=torch.bool), float("nan")
            )
        return out


def test_a_good_protocol_passes():
    check_protocol(ImageNoise)


@pytest.mark.parametrize(
    ("cls", "rule"),
    [
        (UnseededNoise, "deterministic given a seed"),
        (NoisyAtZero, "level 0 returns the batch unchanged"),
        (FloatMask, "masks stay bool"),
        (DropsIndex, "output keeps the batch keys"),
        (TruncatesText, "output keeps shapes"),
        (InPlaceNoise, "apply leaves its input unchanged"),
        (LevelTwo, "levels() are finite numbers >= 0"),
        (EvalStage, "stage is test or train"),
        (NaNImages, "float tensors stay finite"),
    ],
)
def test_protocol_checker_names_the_broken_rule(cls, rule):
    broken(check_protocol, cls, rule)


# ---------------------------------------------------------------------------------------------- reporters
class SeedTable(Reporter):
    name = "seed_table"
    formats = ("csv", "terminal")

    def render(self, view, fmt, console=None, **_):
        table = (
            view.runs.pivot_table(index="fusion", columns="seed", values=view.metric)
            if len(view.runs)
            else None
        )
        if fmt == "terminal":
            console.print(str(table))
            return None
        return "" if table is None else table.to_csv()


class FailsOnCsv(SeedTable):
    def render(self, view, fmt, console=None, **_):
        if fmt == "csv":
            raise KeyError("no csv writer")
        return super().render(view, fmt, console=console)


class NoFormats(SeedTable):
    formats = ()


class Silent(SeedTable):
    def render(self, view, fmt, console=None, **_):
        return None


class CrashesOnEmpty(SeedTable):
    def render(self, view, fmt, console=None, **_):
        best = view.runs.iloc[0]["fusion"]  # IndexError on a view without runs
        return f"best: {best}"


def test_a_good_reporter_passes(tmp_path):
    check_reporter(SeedTable, tmp_path)


@pytest.mark.parametrize(
    ("cls", "rule"),
    [
        (FailsOnCsv, "renders each declared format"),
        (NoFormats, "declares its formats"),
        (Silent, "rendering produces output"),
        (CrashesOnEmpty, "renders an empty view without raising"),
    ],
)
def test_reporter_checker_names_the_broken_rule(cls, rule, tmp_path):
    broken(check_reporter, cls, rule, tmp_path)


# ---------------------------------------------------------------------------------------------- launchers
class Reversed(Launcher):
    """Runs the tasks last first: records may reach the driver in any order."""

    name = "reversed"

    def run(self, tasks, data_for, driver):
        for task in reversed(tasks):
            driver.finished(execute_run(task, data_for(task.spec.dataset)))


class SkipsTheLast(Reversed):
    def run(self, tasks, data_for, driver):
        super().run(tasks[:-1], data_for, driver)


class ReportsTheFirstTwice(Reversed):
    def run(self, tasks, data_for, driver):
        record = execute_run(tasks[0], data_for(tasks[0].spec.dataset))
        driver.finished(record)
        driver.finished(record)
        super().run(tasks[1:], data_for, driver)


class LetsFailuresEscape(Reversed):
    def run(self, tasks, data_for, driver):
        from fusionzoo.launch.base import RunRecord, result_row
        from fusionzoo.train.trainer import train_run

        for task in tasks:
            result = train_run(task.spec.config, data_for(task.spec.dataset))
            driver.finished(RunRecord(task.spec, result_row(task.spec, result)))


class TampersWithPredictions(Reversed):
    def run(self, tasks, data_for, driver):
        for task in tasks:
            record = execute_run(task, data_for(task.spec.dataset))
            if record.predictions is not None:
                record.predictions = (record.predictions + 1) % 3
            driver.finished(record)


def test_a_good_launcher_passes():
    check_launcher(Reversed)


@pytest.mark.parametrize(
    ("cls", "rule"),
    [
        (SkipsTheLast, "reports every record exactly once"),
        (ReportsTheFirstTwice, "reports every record exactly once"),
        (LetsFailuresEscape, "a failing run is a failed record"),
        (TampersWithPredictions, "results equal the local launcher's"),
    ],
)
def test_launcher_checker_names_the_broken_rule(cls, rule):
    broken(check_launcher, cls, rule)
