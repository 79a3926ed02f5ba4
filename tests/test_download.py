"""GLAMI download against a loopback HTTP server: resume, checksum, atomic extraction, skipping."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from rich.console import Console

from fusionzoo.data import load_dataset
from fusionzoo.data.download import (
    MARKER,
    ChecksumError,
    DownloadError,
    download_file,
    download_glami,
    expected_md5,
    glami_url,
)
from fusionzoo.testing.glami_files import glami_rows, glami_zip, write_glami
from fusionzoo.testing.range_server import RangeServer as Server


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


@pytest.fixture
def glami_zip_bytes(tmp_path):
    dataset = write_glami(tmp_path / "src", glami_rows(30), glami_rows(6, split="test", start=100))
    return glami_zip(dataset, tmp_path / "GLAMI-1M-dataset.zip").read_bytes()


QUIET = dict(console=Console(file=io.StringIO()), progress=False, backoff=0.0, timeout=10)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_downloads_verifies_extracts_and_loads(server, glami_zip_bytes, tmp_path):
    server.files["GLAMI-1M-dataset.zip"] = glami_zip_bytes
    dataset = download_glami(
        tmp_path / "data", url=server.url("GLAMI-1M-dataset.zip"), md5=md5(glami_zip_bytes), **QUIET
    )
    assert dataset == tmp_path / "data" / "glami1m" / "GLAMI-1M-dataset"
    assert (dataset / MARKER).is_file() and (dataset / "images").is_dir()
    assert not (
        tmp_path / "data" / "downloads" / "GLAMI-1M-dataset.zip"
    ).exists()  # zip removed after extraction
    assert not [p for p in (tmp_path / "data" / "glami1m").iterdir() if p.name.startswith(".")]
    splits = load_dataset("glami1m", data_dir=tmp_path / "data")
    assert len(splits.test) == 6
    # skip work already done: no request is made the second time
    requests = len(server.ranges)
    download_glami(
        tmp_path / "data", url=server.url("GLAMI-1M-dataset.zip"), md5=md5(glami_zip_bytes), **QUIET
    )
    assert len(server.ranges) == requests


def test_interrupted_download_resumes_within_one_run(server, glami_zip_bytes, tmp_path):
    server.files["z.zip"] = glami_zip_bytes
    server.cuts = [len(glami_zip_bytes) // 3, len(glami_zip_bytes) // 3]
    dest = download_file(
        server.url("z.zip"), tmp_path / "z.zip", md5=md5(glami_zip_bytes), retries=3, **QUIET
    )
    assert dest.read_bytes() == glami_zip_bytes
    third = len(glami_zip_bytes) // 3
    assert server.ranges == [None, f"bytes={third}-", f"bytes={2 * third}-"]


def test_interrupted_download_resumes_on_the_next_run(server, glami_zip_bytes, tmp_path):
    server.files["z.zip"] = glami_zip_bytes
    server.cuts = [1000]
    with pytest.raises(
        DownloadError, match=r"interrupted after 1000 bytes.*partial file .*z.zip.part is kept"
    ):
        download_file(server.url("z.zip"), tmp_path / "z.zip", md5=md5(glami_zip_bytes), retries=0, **QUIET)
    assert (tmp_path / "z.zip.part").stat().st_size == 1000
    dest = download_file(
        server.url("z.zip"), tmp_path / "z.zip", md5=md5(glami_zip_bytes), retries=0, **QUIET
    )
    assert dest.read_bytes() == glami_zip_bytes and server.ranges[-1] == "bytes=1000-"
    assert not (tmp_path / "z.zip.part").exists()


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


def test_checksum_mismatch_keeps_file_aside_and_does_not_extract(server, glami_zip_bytes, tmp_path):
    server.files["GLAMI-1M-dataset.zip"] = glami_zip_bytes
    with pytest.raises(
        ChecksumError, match=r"expected 0{32}; the file was kept aside as .*GLAMI-1M-dataset.zip.corrupt"
    ):
        download_glami(tmp_path / "data", url=server.url("GLAMI-1M-dataset.zip"), md5="0" * 32, **QUIET)
    downloads = tmp_path / "data" / "downloads"
    assert (downloads / "GLAMI-1M-dataset.zip.corrupt").read_bytes() == glami_zip_bytes
    assert not (downloads / "GLAMI-1M-dataset.zip").exists()
    assert not (tmp_path / "data" / "glami1m" / "GLAMI-1M-dataset").exists()
    # a second mismatch does not overwrite the first kept-aside file
    with pytest.raises(ChecksumError, match=r"\.corrupt\.1"):
        download_glami(tmp_path / "data", url=server.url("GLAMI-1M-dataset.zip"), md5="0" * 32, **QUIET)


def test_test_only_then_full(server, glami_zip_bytes, tmp_path):
    src = tmp_path / "src2"
    dataset = write_glami(src, glami_rows(30), glami_rows(6, split="test", start=100))
    test_zip = glami_zip(dataset, tmp_path / "GLAMI-1M-dataset--test-only.zip", test_only=True).read_bytes()
    server.files["GLAMI-1M-dataset--test-only.zip"] = test_zip
    server.files["GLAMI-1M-dataset.zip"] = glami_zip_bytes
    data = tmp_path / "data"
    out = download_glami(
        data, test_only=True, url=server.url("GLAMI-1M-dataset--test-only.zip"), md5="skip", **QUIET
    )
    assert (out / "GLAMI-1M-test.csv").is_file() and not (out / "GLAMI-1M-train.csv").exists()
    out = download_glami(
        data, url=server.url("GLAMI-1M-dataset.zip"), md5=md5(glami_zip_bytes), keep_zip=True, **QUIET
    )
    assert (out / "GLAMI-1M-train.csv").is_file()
    assert (data / "downloads" / "GLAMI-1M-dataset.zip").is_file()
    requests = len(server.ranges)  # full dataset present: a test-only request is already satisfied
    download_glami(
        data, test_only=True, url=server.url("GLAMI-1M-dataset--test-only.zip"), md5="skip", **QUIET
    )
    assert len(server.ranges) == requests


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


def test_http_errors_and_url_resolution(server, tmp_path, monkeypatch):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(server.url("missing.zip"), tmp_path / "m.zip", **QUIET)
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
