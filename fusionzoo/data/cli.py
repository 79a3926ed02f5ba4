"""``fusionzoo data``: GLAMI-1M download/verify, the embedded synthetic dataset, dataset info.

:func:`dataset_options` and :func:`load_from_options` give any other command (bench, encode, tune) the
same ``--dataset synth|glami1m|csv`` options and loading behaviour.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from fusionzoo.cli_common import CommaList, plugin_option
from fusionzoo.data.base import BAD_IMAGE_POLICIES, DataError, DatasetSplits

DATASET_OPTION_NAMES = (
    "dataset",
    "data_dir",
    "csv",
    "image_col",
    "text_cols",
    "label_col",
    "image_root",
    "limit",
    "per_class_cap",
    "label_source",
    "geos",
    "val_fraction",
    "data_seed",
    "on_bad_image",
    "synth_size",
    "synth_image_size",
)


def data_dir_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Data directory (default: $FUSIONZOO_DATA, else the user cache dir).",
    )(func)


def dataset_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the dataset selection options (see :data:`DATASET_OPTION_NAMES`) to a click command."""
    options = [
        click.option(
            "--dataset",
            type=click.Choice(["synth", "glami1m", "csv"]),
            default="synth",
            show_default=True,
            help="synth = the embedded GLAMI-format dataset (generated once, cached).",
        ),
        data_dir_option,
        click.option(
            "--csv", default=None, metavar="TRAIN[,TEST]", help="--dataset csv: train CSV [and test CSV]."
        ),
        click.option(
            "--image-col", default="image", show_default=True, help="--dataset csv: image path column."
        ),
        click.option(
            "--text-cols",
            type=CommaList(what="column"),
            default="text",
            show_default=True,
            help="--dataset csv: text column(s), joined with newlines.",
        ),
        click.option("--label-col", default="label", show_default=True, help="--dataset csv: label column."),
        click.option(
            "--image-root",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="--dataset csv: folder the image paths are relative to (default: the CSV's folder).",
        ),
        click.option(
            "--limit", type=click.IntRange(min=1), default=None, help="At most N train rows (class mix kept)."
        ),
        click.option(
            "--per-class-cap",
            type=click.IntRange(min=1),
            default=None,
            help="At most N train rows per class.",
        ),
        click.option(
            "--label-source",
            type=click.Choice(["all", "human"]),
            default="all",
            show_default=True,
            help="human = admin, quality-check, custom-tag labels only.",
        ),
        click.option(
            "--geo", "geos", type=CommaList(what="geo"), default=None, help="Only these geos, e.g. cz,sk."
        ),
        click.option(
            "--val-fraction",
            type=click.FloatRange(0, 1, max_open=True),
            default=0.1,
            show_default=True,
            help="Validation share carved from train (stratified).",
        ),
        click.option(
            "--data-seed", type=int, default=0, show_default=True, help="Seed of the val split/subsampling."
        ),
        click.option(
            "--on-bad-image",
            type=click.Choice(BAD_IMAGE_POLICIES),
            default="skip",
            show_default=True,
            help="Missing/unreadable images: skip (count + warn) or fail.",
        ),
        click.option(
            "--synth-size", type=click.IntRange(min=8), default=None, help="--dataset synth: total rows."
        ),
        click.option(
            "--synth-image-size",
            type=click.IntRange(8, 1024),
            default=None,
            help="--dataset synth: image side (px).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def pop_dataset_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove the :func:`dataset_options` values from a command's kwargs and return them."""
    return {name: kwargs.pop(name) for name in DATASET_OPTION_NAMES if name in kwargs}


def load_from_options(options: dict[str, Any]) -> DatasetSplits:
    """``load_dataset`` from :func:`dataset_options` values; a :class:`DataError` becomes a click error."""
    from fusionzoo.data import load_dataset

    name = options.get("dataset", "synth")
    extra: dict[str, Any] = {}
    if name == "csv":
        if not options.get("csv"):
            raise click.UsageError("--dataset csv needs --csv train.csv[,test.csv]")
        extra = {
            "csv": options["csv"],
            "image_col": options.get("image_col", "image"),
            "text_cols": options.get("text_cols") or ["text"],
            "label_col": options.get("label_col", "label"),
            "image_root": options.get("image_root"),
        }
    elif name == "synth":
        if options.get("synth_size") is not None:
            extra["size"] = options["synth_size"]
        if options.get("synth_image_size") is not None:
            extra["image_size"] = options["synth_image_size"]
    try:
        return load_dataset(
            name,
            data_dir=options.get("data_dir"),
            limit=options.get("limit"),
            per_class_cap=options.get("per_class_cap"),
            label_source=options.get("label_source", "all"),
            geos=options.get("geos"),
            val_fraction=options.get("val_fraction", 0.1),
            seed=options.get("data_seed", 0),
            on_bad_image=options.get("on_bad_image", "skip"),
            **extra,
        )
    except DataError as exc:
        raise click.ClickException(str(exc)) from None


def _data_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DataError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@click.group("data")
def data() -> None:
    """Datasets: GLAMI-1M (download, verify), the embedded synthetic dataset, dataset info."""


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
@_data_errors
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
        _print_verify(out, location, deep)
        return
    if not download:
        try:
            found = find_dataset_dir(location)
        except DataError:
            out.print(f"GLAMI-1M not found under {location}; get it with `fusionzoo data glami1m --download`")
            return
        out.print(f"GLAMI-1M at {found}")


def _print_verify(out: Console, location: Path, deep: bool) -> None:
    from fusionzoo.data.glami import verify_glami

    report = verify_glami(location, deep=deep)
    table = Table(title=f"GLAMI-1M verification: {report['dataset_dir']}")
    for column in ("split", "rows", "official rows", "status"):
        table.add_column(column)
    for split, entry in report["splits"].items():
        rows = "" if entry["rows"] is None else f"{entry['rows']:,}"
        table.add_row(split, rows, f"{entry['official_rows']:,}", entry["error"] or "ok")
    out.print(table)
    problems = report["image_problems"]
    out.print(f"images checked: {report['images_checked']:,}; problems: {len(problems):,}")
    if len(problems):
        counts = problems["problem"].str.split(" ").str[0].value_counts()
        out.print("  " + ", ".join(f"{kind}: {count}" for kind, count in counts.items()))
        for row in problems.head(10).itertuples(index=False):
            out.print(f"  item_id {row.item_id}: {row.image_path} ({row.problem})")
    if not report["ok"]:
        raise click.ClickException("verification failed (see above)")
    out.print("[green]OK")


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
@_data_errors
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
    from fusionzoo.data.synth import SynthConfig, default_out, ensure_synth, is_current, read_params

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
@dataset_options
@click.option("--top", type=int, default=15, show_default=True, help="Classes to list (largest first).")
@plugin_option
def info_cmd(top: int, plugins: tuple[str, ...], **kwargs: Any) -> None:
    """Split sizes, class counts, geo and label_source counts of a dataset."""
    splits = load_from_options(pop_dataset_options(kwargs))
    out = Console()
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
