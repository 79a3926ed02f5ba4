"""Tiny GLAMI-format datasets for tests (ours and other packages'): exact layout, a few rows."""

from __future__ import annotations

import http.server
import io
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from fusionzoo.data.glami import DATASET_FOLDER, GLAMI_COLUMNS, IMAGES_FOLDER, TEST_CSV, TRAIN_CSV

_COLOURS = ((200, 30, 30), (30, 60, 200), (30, 160, 60), (220, 200, 40))


def jpeg_bytes(colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (24, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def glami_rows(
    n: int, *, split: str = "train", categories: Sequence[int] = (7, 42, 13), start: int = 0
) -> list[dict[str, Any]]:
    """``n`` well-formed GLAMI rows cycling through ``categories`` (label_source varied, some NaN)."""
    sources = ("admin", "custom-tag", None, "quality-check") if split == "train" else ("admin", "custom-tag")
    geos = ("cz", "sk", "hu", "gr")
    rows = []
    for i in range(start, start + n):
        category = categories[i % len(categories)]
        rows.append(
            {
                "item_id": str(1000 + i),
                "image_id": str(5000 + i),
                "geo": geos[i % len(geos)],
                "name": f"item {i} word{category}",
                "description": None if i % 5 == 0 else f"description {i}",
                "category": category,
                "category_name": f"class-{category}",
                "label_source": sources[i % len(sources)],
            }
        )
    return rows


def write_glami(
    root: Path,
    train: Sequence[dict[str, Any]],
    test: Sequence[dict[str, Any]],
    *,
    images: bool = True,
    image_size: tuple[int, int] = (24, 32),
) -> Path:
    """Write ``root/GLAMI-1M-dataset/{train,test}.csv`` and a JPEG per image_id; returns the dataset dir."""
    dataset_dir = Path(root) / DATASET_FOLDER
    (dataset_dir / IMAGES_FOLDER).mkdir(parents=True, exist_ok=True)
    for rows, name in ((train, TRAIN_CSV), (test, TEST_CSV)):
        pd.DataFrame(list(rows), columns=list(GLAMI_COLUMNS)).to_csv(dataset_dir / name, index=False)
        if images:
            for row in rows:
                image_id = str(row["image_id"])
                if "/" in image_id or "\\" in image_id or image_id.startswith("."):
                    continue
                colour = _COLOURS[int(row["category"]) % len(_COLOURS)]
                (dataset_dir / IMAGES_FOLDER / f"{image_id}.jpg").write_bytes(jpeg_bytes(colour, image_size))
    return dataset_dir


def glami_zip(dataset_dir: Path, target: Path, *, test_only: bool = False) -> Path:
    """Zip a GLAMI-format folder like the official release (members under ``GLAMI-1M-dataset/``)."""
    dataset_dir = Path(dataset_dir)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for path in sorted(dataset_dir.rglob("*")):
            relative = path.relative_to(dataset_dir)
            if test_only and relative.name == TRAIN_CSV:
                continue
            if path.is_file():
                archive.write(path, f"{DATASET_FOLDER}/{relative.as_posix()}")
    return target


class RangeServer:
    """A loopback HTTP server for download tests: serves ``files`` (name → bytes) on 127.0.0.1.

    Honours ``Range`` (unless ``honour_range`` is False), records each request's Range header in
    ``ranges`` and, for the next requests, closes the connection after ``cuts[i]`` bytes.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cuts: list[int] = []  # for the next requests: close the connection after this many bytes
        self.ranges: list[str | None] = []
        self.honour_range = True
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):  # noqa: N802
                name = self.path.lstrip("/")
                server.ranges.append(self.headers.get("Range"))
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                start = 0
                header = self.headers.get("Range")
                if header and server.honour_range:
                    start = int(header.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if server.cuts:
                    body = body[: server.cuts.pop(0)]
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
