"""A loopback HTTP server for download tests (Range requests, cut connections, the Hub's protocol), offline."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading

HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"


class RangeServer:
    """A loopback HTTP server for download tests: serves ``files`` (name → bytes) on 127.0.0.1.

    Each file is at ``/<name>`` (a plain mirror) and at ``/datasets/<repo>/resolve/<revision>/<name>``
    with the headers the Hugging Face Hub client expects (``ETag``, ``X-Repo-Commit``,
    ``Content-Length``, ``HEAD`` requests), so ``hf_hub_download(..., endpoint=server.endpoint)`` works
    against it. Honours ``Range`` (unless ``honour_range`` is False), records each GET's Range header in
    ``ranges`` (and every request as ``(method, path)`` in ``requests``) and, for the next GETs, closes
    the connection after ``cuts[i]`` bytes.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cuts: list[int] = []  # for the next requests: close the connection after this many bytes
        self.ranges: list[str | None] = []
        self.requests: list[tuple[str, str]] = []
        self.honour_range = True
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _file(self) -> tuple[str, bytes] | None:
                name = re.sub(r"^/datasets/[^/]+/[^/]+/resolve/[^/]+/", "/", self.path.split("?")[0]).lstrip(
                    "/"
                )
                server.requests.append((self.command, self.path))
                if name not in server.files:
                    self.send_error(404)
                    return None
                return name, server.files[name]

            def _identity(self, data: bytes) -> None:
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("X-Repo-Commit", HUB_COMMIT)
                self.send_header("Accept-Ranges", "bytes")

            def do_HEAD(self):  # noqa: N802
                found = self._file()
                if found is None:
                    return
                self.send_response(200)
                self._identity(found[1])
                self.send_header("Content-Length", str(len(found[1])))
                self.end_headers()

            def do_GET(self):  # noqa: N802
                server.ranges.append(self.headers.get("Range"))
                found = self._file()
                if found is None:
                    return
                data = found[1]
                start = 0
                header = self.headers.get("Range")
                if header and server.honour_range:
                    start = int(header.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self._identity(data)
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

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, name: str) -> str:
        return f"{self.endpoint}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
