"""Shared by the check-set tests: the benchmarks/checkset modules loaded by path, and tiny hand-made
MDI inputs (two SVG shapes, meta entries, an npm-like tarball)."""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import io
import json
import sys
import tarfile
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKSET_DIR = ROOT / "benchmarks" / "checkset"
if str(CHECKSET_DIR) not in sys.path:  # the scripts import their sibling modules by name, as when run
    sys.path.insert(0, str(CHECKSET_DIR))


def load_script(name: str):
    path = CHECKSET_DIR / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"checkset_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


build = load_script("build")
encoders = load_script("encoders")
icon_select = importlib.import_module("icon_select")  # a sibling module build.py imports by name
checkset_common = importlib.import_module("checkset_common")
mdi_source = importlib.import_module("mdi_source")


def has_cairosvg() -> bool:
    try:
        import cairosvg  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


needs_cairo = pytest.mark.skipif(not has_cairosvg(), reason="cairosvg/libcairo not installed")

SQUARE = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path d="M4,4H20V20H4Z" /></svg>'
TRIANGLE = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path d="M12,2L22,22H2Z" /></svg>'


def mdi_entry(name, tags, *, family=None, aliases=(), author="Google", deprecated=False):
    return {
        "id": name.upper(),
        "baseIconId": (family or name).upper(),
        "name": name,
        "aliases": list(aliases),
        "tags": list(tags),
        "author": author,
        "deprecated": deprecated,
    }


def mdi_tarball(path: Path, meta: list[dict], svgs: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        files = {
            "package/meta.json": json.dumps(meta).encode(),
            "package/package.json": json.dumps({"name": "@mdi/svg", "version": "0.0.0-test"}).encode(),
            **{f"package/svg/{name}.svg": data for name, data in svgs.items()},
        }
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def tiny_meta() -> tuple[list[dict], dict[str, bytes]]:
    meta, svgs = [], {}
    for label, shape in (("Shape", SQUARE), ("Weather", TRIANGLE)):
        for index in range(6):
            name = f"{label.lower()}-thing-{index}"
            meta.append(mdi_entry(name, [label], family=f"{label}-{index // 2}", aliases=[f"alias-{index}"]))
            svgs[name] = shape
    meta.append(mdi_entry("old-one", ["Shape"], deprecated=True))
    meta.append(mdi_entry("no-tag", []))
    meta.append(mdi_entry("smile", ["Emoji"]))
    meta.append(mdi_entry("weather", ["Weather"]))  # no text left once the tag word is removed
    svgs.update({"old-one": SQUARE, "no-tag": SQUARE, "smile": SQUARE, "weather": SQUARE})
    return meta, svgs


TINY = build.BuildParams(min_icons=3, min_families=2, images=12, min_images_per_class=4, items_per_image=3.0)


@contextlib.contextmanager
def loopback_registry(files: dict[str, bytes]):
    """A local HTTP server answering GET <path> with ``files[path]`` (404 otherwise): an npm registry."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server API)
            requests.append(self.path)
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
