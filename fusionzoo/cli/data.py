"""``fusionzoo data``: what a dataset backend owns, for any registered dataset, plus two helpers.

- ``data status`` / ``data verify`` / ``data info`` take the experiment flags of ``fusionzoo bench``
  (``--dataset`` any registered backend, ``--data-dir``, ``--data-option KEY=VALUE``, ``--limit``,
  ``--config``), so they describe exactly the data a bench with the same flags loads;
- ``data glami1m --download`` fetches GLAMI-1M (``--verify`` is ``data verify --dataset glami1m``);
- ``data synth`` writes the embedded dataset ahead of time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from fusionzoo import registry
from fusionzoo.cli.common import plugin_option
from fusionzoo.cli.errors import Group, checking_input
from fusionzoo.cli.options import config_from_flags, experiment_options
from fusionzoo.data.base import DataError, DatasetSplits


def data_dir_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Data directory (default: $FUSIONZOO_DATA, else the user cache dir).",
    )(func)


def _datasets(flags: dict[str, Any], config_path: str | None) -> list[tuple[Any, Any]]:
    """(backend, DataOptions) of every dataset the flags name; a wrong name or option is a usage error."""
    from fusionzoo.experiment import Experiment

    config = config_from_flags(flags, config_path)
    experiment = Experiment(config)
    out = []
    for dataset in config.bench.datasets:
        with checking_input():
            backend = experiment.backend(dataset)
            backend.check_options(dict(config.data))
        out.append((backend, experiment.data_options(dataset)))
    return out


def load_from_flags(flags: dict[str, Any], config_path: str | None) -> list[DatasetSplits]:
    """The datasets the experiment flags name, loaded as bench loads them (a DataError exits 1)."""
    from fusionzoo.prepare import load_splits

    return [load_splits(options) for _, options in _datasets(flags, config_path)]


@click.group("data", cls=Group)
def data() -> None:
    """Datasets: status, verify and info of any registered dataset; GLAMI-1M download; the embedded one."""


@data.command("glami1m")
@click.option("--download", is_flag=True, help="Download and extract GLAMI-1M (resumes; skips work done).")
@click.option("--test-only", is_flag=True, help="With --download: only the test split zip (1.4 GB).")
@click.option("--verify", is_flag=True, help="Check CSVs, row counts and images; exit 1 on problems.")
@click.option(
    "--deep", is_flag=True, help="With --verify: decode every image (slow) instead of header checks."
)
@data_dir_option
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="GLAMI folder to verify (default: <data dir>/glami1m).",
)
@click.option("--url", default=None, help="Zip URL (default: $FUSIONZOO_GLAMI_URL, else the official one).")
@click.option(
    "--md5", default="auto", show_default=True, help="Expected md5 (auto = published one; skip = none)."
)
@click.option("--keep-zip", is_flag=True, help="Keep the zip after extraction.")
@click.option("--force", is_flag=True, help="Download and extract again even if already present.")
@plugin_option
def glami1m_cmd(
    download: bool,
    test_only: bool,
    verify: bool,
    deep: bool,
    data_dir: Path | None,
    root: Path | None,
    url: str | None,
    md5: str,
    keep_zip: bool,
    force: bool,
    plugins: tuple[str, ...],
) -> None:
    """GLAMI-1M: --download it into the data dir, --verify it, or show where it is."""
    from fusionzoo.data.glami import find_dataset_dir
    from fusionzoo.data.paths import glami_dir

    console = Console(stderr=True)
    out = Console()
    if test_only and not download:
        raise click.UsageError("--test-only goes with --download")
    if download:
        from fusionzoo.data.download import download_glami

        download_glami(
            data_dir, test_only=test_only, url=url, md5=md5, keep_zip=keep_zip, force=force, console=console
        )
    location = root or glami_dir(data_dir)
    if verify:
        report = registry.create("dataset", "glami1m").verify(deep=deep, data_dir=data_dir, root=root)
        _print_verify(out, "glami1m", report)
        return
    if not download:
        try:
            found = find_dataset_dir(location)
        except DataError:
            out.print(f"GLAMI-1M not found under {location}; get it with `fusionzoo data glami1m --download`")
            return
        out.print(f"GLAMI-1M at {found}")


def _print_verify(out: Console, dataset: str, report: dict[str, Any]) -> None:
    """A verification report (``DatasetBackend.verify``); exit 1 when it is not ok."""
    if report.get("splits"):
        table = Table(title=f"{dataset} verification: {report['dataset_dir']}")
        for column in ("split", "rows", "official rows", "status"):
            table.add_column(column)
        for split, entry in report["splits"].items():
            rows = "" if entry["rows"] is None else f"{entry['rows']:,}"
            official = "" if entry.get("official_rows") is None else f"{entry['official_rows']:,}"
            table.add_row(split, rows, official, entry["error"] or "ok")
        out.print(table)
    else:
        out.print(f"{dataset} verification: {report['dataset_dir']}")
    problems = report["image_problems"]
    out.print(f"images checked: {report.get('images_checked', 0):,}; problems: {len(problems):,}")
    if len(problems):
        counts = problems["problem"].str.split(" ").str[0].value_counts()
        out.print("  " + ", ".join(f"{kind}: {count}" for kind, count in counts.items()))
        for row in problems.head(10).itertuples(index=False):
            out.print(f"  item_id {row.item_id}: {row.image_path} ({row.problem})")
    if not report["ok"]:
        raise click.ClickException("verification failed (see above)")
    out.print("[green]OK")


@data.command("status")
@experiment_options("dataset", "data_dir", "data_options")
@plugin_option
def status_cmd(config_path: str | None, plugins: tuple[str, ...], **flags: Any) -> None:
    """One line per dataset: whether it is there, or what a run will do first (nothing is built)."""
    for backend, options in _datasets(flags, config_path):
        line = backend.status(data_dir=options.data_dir, **options.data)
        click.echo(f"{options.dataset}: {line}")


@data.command("verify")
@experiment_options("dataset", "data_dir", "data_options")
@click.option("--deep", is_flag=True, help="Decode every image (slow) instead of header checks.")
@plugin_option
def verify_cmd(config_path: str | None, deep: bool, plugins: tuple[str, ...], **flags: Any) -> None:
    """Check a dataset's files and every image (the backend's own checks); exit 1 on problems."""
    out = Console()
    failed = []
    for backend, options in _datasets(flags, config_path):
        report = backend.verify(deep=deep, data_dir=options.data_dir, **options.data)
        try:
            _print_verify(out, options.dataset, report)
        except click.ClickException:
            failed.append(options.dataset)
    if failed:
        raise click.ClickException(f"verification failed for {', '.join(failed)} (see above)")


@data.command("synth")
@click.option(
    "--size", type=click.IntRange(min=8), default=None, help="Total listings, train + test (default 6000)."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write (default: <data dir>/synth/<params>).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Generation seed.")
@click.option(
    "--image-size", type=click.IntRange(8, 1024), default=None, help="Image side in pixels (default 64)."
)
@click.option(
    "--zipf", type=click.FloatRange(min=0), default=None, help="Class prior exponent (default 0.8)."
)
@data_dir_option
@click.option("--force", is_flag=True, help="Regenerate even if an identical dataset exists.")
@plugin_option
def synth_cmd(
    size: int | None,
    out: Path | None,
    seed: int,
    image_size: int | None,
    zipf: float | None,
    data_dir: Path | None,
    force: bool,
    plugins: tuple[str, ...],
) -> None:
    """Write the embedded GLAMI-format synthetic dataset (cached by its parameters)."""
    from fusionzoo.data.synth_files import SynthConfig, default_out, ensure_synth, is_current, read_params

    config = SynthConfig.from_options(size=size, seed=seed, image_size=image_size, zipf=zipf)
    target = out.expanduser().resolve() if out is not None else default_out(config, data_dir)
    reused = not force and is_current(target, config)
    started = time.perf_counter()
    path = ensure_synth(config, target, force=force)
    elapsed = time.perf_counter() - started
    rows = (read_params(path) or {}).get("stats", {}).get("rows", {})
    click.echo(
        f"synthetic dataset {'reused' if reused else 'generated'} at {path}: {rows.get('train', '?')} train + "
        f"{rows.get('test', '?')} test rows, {config.num_classes} classes, {config.image_size}px images, "
        f"{elapsed:.1f}s"
    )


@data.command("info")
@experiment_options("dataset", "data_dir", "data_options", "limit")
@click.option("--top", type=int, default=15, show_default=True, help="Classes to list (largest first).")
@plugin_option
def info_cmd(config_path: str | None, top: int, plugins: tuple[str, ...], **flags: Any) -> None:
    """Split sizes, class counts, geo and label_source counts of a dataset (as bench loads it)."""
    out = Console()
    for splits in load_from_flags(flags, config_path):
        _info_tables(out, splits, top)


def _info_tables(out: Console, splits: DatasetSplits, top: int) -> None:
    frames = {"train": splits.train, "val": splits.val, "test": splits.test}
    summary = Table(title=f"{splits.name}: {splits.root} (fingerprint {splits.fingerprint})")
    summary.add_column("split")
    for column in ("rows", "classes", "human-labelled", "empty text"):
        summary.add_column(column, justify="right")
    for name, frame in frames.items():
        summary.add_row(
            name,
            f"{len(frame):,}",
            str(frame["label"].nunique()),
            f"{frame['is_human'].mean():.1%}" if len(frame) else "-",
            str(int((frame["text"].str.strip() == "").sum())),
        )
    out.print(summary)

    classes = Table(title=f"classes ({splits.num_classes}; largest {min(top, splits.num_classes)})")
    for column in ("label", "name", *frames):
        classes.add_column(column, justify="right" if column != "name" else "left")
    counts = {name: frame["label"].value_counts() for name, frame in frames.items()}
    for label in counts["train"].index[:top]:
        classes.add_row(
            str(label), splits.classes[label], *(str(int(c.get(label, 0))) for c in counts.values())
        )
    out.print(classes)

    for column in ("geo", "label_source"):
        table = Table(title=f"{column} counts")
        table.add_column(column)
        for name in frames:
            table.add_column(name, justify="right")
        values = {name: frame[column].value_counts() for name, frame in frames.items()}
        for value in values["train"].index.union(values["test"].index):
            table.add_row(str(value) or "''", *(str(int(v.get(value, 0))) for v in values.values()))
        out.print(table)
    for message in splits.info.get("warnings", []):
        out.print(f"[yellow]warning:[/] {message}")
