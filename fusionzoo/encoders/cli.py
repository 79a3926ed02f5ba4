"""``fusionzoo encode``: run the encoders once per split and fill the feature cache (``--launcher ray``:
row shards on a Ray cluster, :mod:`fusionzoo.launch.ray_encode`)."""

from __future__ import annotations

import contextlib

import click

from fusionzoo.cli_common import plugin_option


def _image_tokens(value: str) -> str | int:
    from fusionzoo.encoders.image import parse_token_selection

    return parse_token_selection(value)


def _parse_options(pairs: tuple[str, ...]) -> dict[str, object]:
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--option")
        options[key.strip()] = _literal(value.strip())
    return options


def _literal(value: str) -> object:
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            pass
    return value


@click.command("encode")
@click.option("--dataset", default="synth", show_default=True, help="Dataset name: synth, glami1m or csv.")
@click.option(
    "--image-encoder",
    default=None,
    metavar="SPEC",
    help="timm:<model>, timm:<model>@<checkpoint>, or timm:/folder. Default: the dataset's default.",
)
@click.option(
    "--text-encoder",
    default=None,
    metavar="SPEC",
    help="hf:<hub name> or hf:/folder (save_pretrained). Default: the dataset's default.",
)
@click.option("--data-dir", default=None, type=click.Path(file_okay=False), help="Where datasets live.")
@click.option(
    "--cache-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Feature cache folder (default: $FUSIONZOO_CACHE or <data dir>/features).",
)
@click.option(
    "--text-max-length", default=None, type=click.IntRange(min=1), help="Truncate texts to N tokens."
)
@click.option(
    "--image-tokens",
    default="all",
    show_default=True,
    metavar="all|cls|mean|N",
    help="Image tokens to keep: all, the [CLS] token, their mean, or N pooled patch tokens.",
)
@click.option(
    "--text-tokens",
    default="all",
    show_default=True,
    type=click.Choice(["all", "cls", "mean"]),
    help="Text tokens to keep (cls/mean with --image-tokens mean/cls: a pooled-only cache).",
)
@click.option(
    "--no-pretrained", is_flag=True, help="Random weights (architecture and tokenizer still needed)."
)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, mps ...")
@click.option(
    "--num-workers", default=None, type=click.IntRange(min=0), help="DataLoader workers (default: auto)."
)
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Use at most N training rows.")
@click.option(
    "--splits", "split_names", default="train,val,test", show_default=True, help="Splits to encode."
)
@click.option(
    "--on-bad-image",
    default="skip",
    show_default=True,
    type=click.Choice(["skip", "fail"]),
    help="Unreadable images: drop the row (counted, warned) or stop.",
)
@click.option(
    "--verify-cache",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "full", "size"]),
    help="Integrity check of an existing entry: hash every chunk (full), sizes only, or full up to 8 GiB.",
)
@click.option(
    "--option",
    "loader_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Dataset loader option (repeatable), e.g. --option size=600 for synth, --option csv=train.csv.",
)
@click.option("--probe", is_flag=True, help="Afterwards, print linear-probe accuracies (image, text, both).")
@click.option(
    "--launcher",
    default="local",
    show_default=True,
    type=click.Choice(["local", "ray"]),
    help="local: encode here; ray: row shards as Ray tasks (one GPU each when present), committed here.",
)
@click.option("--ray-address", default=None, metavar="ADDR", help="--launcher ray: the cluster to join.")
@click.option(
    "--jobs",
    default=None,
    type=click.IntRange(min=1),
    help="--launcher ray: shards per split [default: one per GPU of the cluster, else per --threads CPUs].",
)
@click.option(
    "--threads",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="--launcher ray: CPUs per shard.",
)
@plugin_option
def encode(
    dataset: str,
    image_encoder: str | None,
    text_encoder: str | None,
    data_dir: str | None,
    cache_dir: str | None,
    text_max_length: int | None,
    image_tokens: str,
    text_tokens: str,
    no_pretrained: bool,
    batch_size: int,
    device: str,
    num_workers: int | None,
    limit: int | None,
    split_names: str,
    on_bad_image: str,
    verify_cache: str,
    loader_options: tuple[str, ...],
    probe: bool,
    launcher: str,
    ray_address: str | None,
    jobs: int | None,
    threads: int,
    plugins: tuple[str, ...],
) -> None:
    """Encode a dataset's splits with an image and a text encoder into the token-feature cache.

    Each split is encoded once: a later run with the same dataset, encoders and options reuses the
    cache (and says so); an interrupted run continues where it stopped.
    """
    from rich.console import Console

    from fusionzoo.data import load_dataset
    from fusionzoo.encoders.cache import default_cache_dir, encode_splits, human_bytes
    from fusionzoo.encoders.defaults import build_encoders
    from fusionzoo.encoders.errors import EncoderError

    console = Console(stderr=True, soft_wrap=True)
    try:
        tokens = _image_tokens(image_tokens)
    except EncoderError as exc:
        raise click.BadParameter(str(exc), param_hint="--image-tokens") from None
    names = [s.strip() for s in split_names.split(",") if s.strip()]
    bad = [s for s in names if s not in ("train", "val", "test")]
    if bad or not names:
        raise click.BadParameter(
            f"unknown split(s) {', '.join(bad) or '(none)'}; use train,val,test", param_hint="--splits"
        )
    try:
        splits = load_dataset(
            dataset,
            data_dir=data_dir,
            limit=limit,
            on_bad_image=on_bad_image,
            **_parse_options(loader_options),
        )
        cache = default_cache_dir(data_dir) if cache_dir is None else cache_dir
        image, text = build_encoders(
            dataset,
            splits,
            cache,
            image_spec=image_encoder,
            text_spec=text_encoder,
            pretrained=False if no_pretrained else None,
            text_max_length=text_max_length,
            image_tokens=tokens,
            text_tokens=text_tokens,
        )
        console.print(
            f"image encoder {image.spec}: {image.num_tokens} tokens × {image.out_dim}; "
            f"text encoder {text.spec}: ≤ {text.max_length} tokens × {text.out_dim}"
        )
        with contextlib.ExitStack() as stack:
            encode_entry = None
            if launcher == "ray":
                from fusionzoo.encoders.sharded import ShardedEncoder
                from fusionzoo.launch.ray_encode import RayShards

                shards = stack.enter_context(
                    RayShards(
                        image, text, address=ray_address, threads=threads, device=device, console=console
                    )
                )
                encode_entry = ShardedEncoder(shards, jobs or shards.shards())
                console.print(f"ray: {encode_entry.shards} shard(s) per split, {threads} CPU(s) each")
            features = encode_splits(
                splits,
                image,
                text,
                cache,
                split_names=names,
                batch_size=batch_size,
                device="cpu" if launcher == "ray" else device,  # the driver only commits: the shards encode
                num_workers=num_workers,
                on_bad_image=on_bad_image,
                verify=verify_cache,
                console=console,
                encode_entry=encode_entry,
            )
    except EncoderError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        if type(exc).__name__ == "DataError":
            raise click.ClickException(str(exc)) from None
        raise
    for name, split in features.items():
        state = (
            "reused" if split.info.get("reused") else ("resumed" if split.info.get("resumed") else "encoded")
        )
        click.echo(
            f"{name}: {len(split)} rows, image {tuple(split.image_tokens.shape)}, text tokens "
            f"{tuple(split.text_tokens.shape)}, {human_bytes(split.info.get('bytes', 0))}, {state}, "
            f"{split.info.get('cache_path')}"
        )
    if probe:
        from fusionzoo.encoders.probe import linear_probe

        evaluation = "test" if "test" in features else names[-1]
        scores = linear_probe(features[names[0]], features[evaluation])
        click.echo(
            f"linear probe ({names[0]} → {evaluation}): image {scores['image']:.3f}, text {scores['text']:.3f}, "
            f"image+text {scores['concat']:.3f} (gain over best single modality {scores['gain']:+.3f})"
        )
