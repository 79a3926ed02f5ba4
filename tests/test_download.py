"""GLAMI download against a loopback server: the Hub client (``hf_hub_download`` pointed at a local
endpoint) and a plain mirror URL (``http_get``): resume, checksum, atomic extraction, skipping, offline."""

from __future__ import annotations

import hashlib
import io
import types
import zipfile
from pathlib import Path

import pytest
from huggingface_hub import constants as hub_constants
from huggingface_hub import file_download
from rich.console import Console

from fusionzoo.data.download import (
    MARKER,
    ChecksumError,
    DownloadError,
    download_file,
    download_glami,
    expected_md5,
    glami_url,
)
from fusionzoo.data.glami_files import glami_rows, glami_zip, write_glami
from fusionzoo.datasets import load_dataset
from fusionzoo.testing.range_server import RangeServer as Server

HUB_FILE = "/datasets/glami/glami-1m/resolve/main/GLAMI-1M-dataset.zip"


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)  # the suite runs with HF_HUB_OFFLINE=1
    monkeypatch.setattr(file_download, "time", types.SimpleNamespace(sleep=lambda seconds: None))
    srv = Server()
    yield srv
    srv.close()


@pytest.fixture
def glami_zip_bytes(tmp_path):
    dataset = write_glami(tmp_path / "src", glami_rows(30), glami_rows(6, split="test", start=100))
    return glami_zip(dataset, tmp_path / "GLAMI-1M-dataset.zip").read_bytes()


QUIET = dict(console=Console(file=io.StringIO()), progress=False, backoff=0.0)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_from_the_hub_verifies_extracts_loads_and_skips_done_work(server, glami_zip_bytes, tmp_path):
    server.files["GLAMI-1M-dataset.zip"] = glami_zip_bytes
    out = io.StringIO()
    dataset = download_glami(
        tmp_path / "data",
        md5=md5(glami_zip_bytes),
        endpoint=server.endpoint,
        **{**QUIET, "console": Console(file=out, width=300)},
    )
    assert ("HEAD", HUB_FILE) in server.requests and ("GET", HUB_FILE) in server.requests
    assert (
        "downloading https://huggingface.co/datasets/glami/glami-1m/resolve/main/GLAMI-1M-dataset.zip"
        in out.getvalue()
    )
    assert dataset == tmp_path / "data" / "glami1m" / "GLAMI-1M-dataset"
    assert (dataset / MARKER).is_file() and (dataset / "images").is_dir()
    downloads = tmp_path / "data" / "downloads"
    assert not (downloads / "GLAMI-1M-dataset.zip").exists()  # zip removed after extraction
    assert not list(downloads.rglob("*.metadata"))
    assert not [p for p in (tmp_path / "data" / "glami1m").iterdir() if p.name.startswith(".")]
    assert len(load_dataset("glami1m", data_dir=tmp_path / "data").test) == 6
    requests = len(server.requests)  # skip work already done: no request the second time
    download_glami(tmp_path / "data", md5=md5(glami_zip_bytes), endpoint=server.endpoint, **QUIET)
    assert len(server.requests) == requests


def test_the_hub_download_resumes_a_dropped_connection_with_a_range_request(
    server, glami_zip_bytes, tmp_path, monkeypatch
):
    monkeypatch.setattr(hub_constants, "DOWNLOAD_CHUNK_SIZE", 1024)  # chunks are written as they arrive
    server.files["GLAMI-1M-dataset.zip"] = glami_zip_bytes
    server.cuts = [len(glami_zip_bytes) // 3]
    download_glami(
        tmp_path / "data", md5=md5(glami_zip_bytes), endpoint=server.endpoint, keep_zip=True, **QUIET
    )
    assert (tmp_path / "data" / "downloads" / "GLAMI-1M-dataset.zip").read_bytes() == glami_zip_bytes
    assert (
        server.ranges[0] is None and server.ranges[1].startswith("bytes=") and server.ranges[1] != "bytes=0-"
    )


def test_offline_mode_uses_a_zip_already_there_and_says_so_when_there_is_none(
    server, glami_zip_bytes, tmp_path, monkeypatch
):
    server.files["GLAMI-1M-dataset.zip"] = glami_zip_bytes
    download_glami(
        tmp_path / "data", md5=md5(glami_zip_bytes), endpoint=server.endpoint, keep_zip=True, **QUIET
    )
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    requests = len(server.requests)
    final = download_glami(
        tmp_path / "data", md5=md5(glami_zip_bytes), endpoint=server.endpoint, force=False, **QUIET
    )
    assert final.is_dir() and len(server.requests) == requests
    with pytest.raises(DownloadError, match="could not be fetched from the Hugging Face Hub.*HF_HUB_OFFLINE"):
        download_glami(tmp_path / "other", md5=md5(glami_zip_bytes), endpoint=server.endpoint, **QUIET)
    with pytest.raises(DownloadError, match="cannot download .*HF_HUB_OFFLINE is set"):
        download_file(server.url("GLAMI-1M-dataset.zip"), tmp_path / "z.zip", retries=0, **QUIET)
    assert len(server.requests) == requests


def test_a_plain_url_download_resumes_on_the_next_run(server, glami_zip_bytes, tmp_path):
    server.files["z.zip"] = glami_zip_bytes
    server.cuts = [1000] * 6  # the Hub client's own retries (5) are exhausted too
    with pytest.raises(
        DownloadError, match=r"interrupted after \d+ bytes.*partial file .*z.zip.part is kept"
    ):
        download_file(server.url("z.zip"), tmp_path / "z.zip", md5=md5(glami_zip_bytes), retries=0, **QUIET)
    (tmp_path / "z.zip.part").write_bytes(glami_zip_bytes[:1000])  # what a killed run leaves
    dest = download_file(
        server.url("z.zip"), tmp_path / "z.zip", md5=md5(glami_zip_bytes), retries=0, **QUIET
    )
    assert dest.read_bytes() == glami_zip_bytes and server.ranges[-1] == "bytes=1000-"
    assert not (tmp_path / "z.zip.part").exists()


def test_a_plain_url_retries_a_connection_that_stays_down(server, glami_zip_bytes, tmp_path):
    server.files["z.zip"] = glami_zip_bytes
    server.cuts = [10] * 6 + [10]  # first attempt: 6 cut connections; the second gets one cut, then all
    dest = download_file(
        server.url("z.zip"), tmp_path / "z.zip", md5=md5(glami_zip_bytes), retries=1, **QUIET
    )
    assert dest.read_bytes() == glami_zip_bytes and len(server.ranges) == 8


def test_server_without_range_support_restarts_cleanly(server, glami_zip_bytes, tmp_path):
    server.files["z.zip"] = glami_zip_bytes
    server.honour_range = False
    (tmp_path / "z.zip.part").write_bytes(b"garbage that must not survive")
    dest = download_file(server.url("z.zip"), tmp_path / "z.zip", md5=md5(glami_zip_bytes), **QUIET)
    assert dest.read_bytes() == glami_zip_bytes


def test_complete_part_file_is_finished_via_416(server, glami_zip_bytes, tmp_path):
    server.files["z.zip"] = glami_zip_bytes
    (tmp_path / "z.zip.part").write_bytes(glami_zip_bytes)
    assert download_file(server.url("z.zip"), tmp_path / "z.zip", md5=md5(glami_zip_bytes), **QUIET).is_file()


@pytest.mark.parametrize("via", ["hub", "url"])
def test_checksum_mismatch_keeps_file_aside_and_does_not_extract(server, glami_zip_bytes, tmp_path, via):
    server.files["GLAMI-1M-dataset.zip"] = glami_zip_bytes
    where = {"endpoint": server.endpoint} if via == "hub" else {"url": server.url("GLAMI-1M-dataset.zip")}
    with pytest.raises(
        ChecksumError, match=r"expected 0{32}; the file was kept aside as .*GLAMI-1M-dataset.zip.corrupt"
    ):
        download_glami(tmp_path / "data", md5="0" * 32, **where, **QUIET)
    downloads = tmp_path / "data" / "downloads"
    assert (downloads / "GLAMI-1M-dataset.zip.corrupt").read_bytes() == glami_zip_bytes
    assert not (downloads / "GLAMI-1M-dataset.zip").exists()
    assert not (tmp_path / "data" / "glami1m" / "GLAMI-1M-dataset").exists()
    # a second mismatch does not overwrite the first kept-aside file
    with pytest.raises(ChecksumError, match=r"\.corrupt\.1"):
        download_glami(tmp_path / "data", md5="0" * 32, **where, **QUIET)


def test_test_only_then_full(server, glami_zip_bytes, tmp_path):
    src = tmp_path / "src2"
    dataset = write_glami(src, glami_rows(30), glami_rows(6, split="test", start=100))
    test_zip = glami_zip(dataset, tmp_path / "GLAMI-1M-dataset--test-only.zip", test_only=True).read_bytes()
    server.files["GLAMI-1M-dataset--test-only.zip"] = test_zip
    server.files["GLAMI-1M-dataset.zip"] = glami_zip_bytes
    data = tmp_path / "data"
    out = download_glami(data, test_only=True, md5="skip", endpoint=server.endpoint, **QUIET)
    assert (out / "GLAMI-1M-test.csv").is_file() and not (out / "GLAMI-1M-train.csv").exists()
    out = download_glami(
        data, url=server.url("GLAMI-1M-dataset.zip"), md5=md5(glami_zip_bytes), keep_zip=True, **QUIET
    )
    assert (out / "GLAMI-1M-train.csv").is_file()
    assert (data / "downloads" / "GLAMI-1M-dataset.zip").is_file()
    requests = len(server.requests)  # full dataset present: a test-only request is already satisfied
    download_glami(data, test_only=True, md5="skip", endpoint=server.endpoint, **QUIET)
    assert len(server.requests) == requests


def test_zip_slip_is_refused(server, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("GLAMI-1M-dataset/GLAMI-1M-test.csv", "item_id\n")
        archive.writestr("../evil.txt", "x")
    server.files["GLAMI-1M-dataset.zip"] = buffer.getvalue()
    with pytest.raises(DownloadError, match="outside"):
        download_glami(tmp_path / "data", url=server.url("GLAMI-1M-dataset.zip"), md5="skip", **QUIET)
    assert not (tmp_path / "data" / "evil.txt").exists()
    assert not (tmp_path / "data" / "glami1m" / "GLAMI-1M-dataset").exists()
    assert not [p for p in (tmp_path / "data" / "glami1m").iterdir() if p.name.startswith(".")]


def test_http_errors_and_url_resolution(server, tmp_path, monkeypatch):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(server.url("missing.zip"), tmp_path / "m.zip", **QUIET)
    with pytest.raises(DownloadError, match="could not be fetched from the Hugging Face Hub"):
        download_glami(tmp_path / "data", test_only=True, md5="skip", endpoint=server.endpoint, **QUIET)
    monkeypatch.setenv("FUSIONZOO_GLAMI_URL", "http://mirror/GLAMI-1M-dataset.zip")
    assert glami_url() == "http://mirror/GLAMI-1M-dataset.zip"
    assert glami_url(url="http://flag/x.zip") == "http://flag/x.zip"
    assert glami_url(test_only=True).startswith(
        "https://huggingface.co/datasets/glami/glami-1m/resolve/main/"
    )
    assert expected_md5() == "500348bbf54595db81cba353acd50d78"
    assert expected_md5(test_only=True) is None
    monkeypatch.setenv("FUSIONZOO_GLAMI_MD5", "A" * 32)
    assert expected_md5() == "a" * 32
    assert expected_md5(md5="skip") is None
    with pytest.raises(ValueError, match="32 hexadecimal"):
        expected_md5(md5="abc")
    assert Path(tmp_path).exists()
