"""Open a report in a real headless Chromium with the network cut off (the report's browser test and
the screenshots of docs/report.md use it; needs ``playwright`` and a Chromium executable).

:func:`offline_page` starts the system's Chromium through playwright (``executable_path``: no browser
download), in a fresh profile, with every request routed: ``file:`` loads of the report itself go
through, anything else is recorded and aborted, and the context is set offline. It yields an
:class:`OfflinePage` with the page, the blocked requests and every console error or page exception.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM_ARGS", "PLOTS_DRAWN", "OfflinePage", "chromium_executable", "offline_page"]

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


# every figure's div holds plotly's drawn SVG
PLOTS_DRAWN = "Array.from(document.querySelectorAll('.fz-plot')).every(p => p.querySelector('.main-svg'))"


def chromium_executable() -> str | None:
    """``$FUSIONZOO_CHROMIUM``, else the first of chromium / chromium-browser / google-chrome on PATH."""
    if os.environ.get("FUSIONZOO_CHROMIUM"):
        return os.environ["FUSIONZOO_CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class OfflinePage:
    page: Any
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@contextlib.contextmanager
def offline_page(
    path: str | Path,
    width: int = 1280,
    height: int = 900,
    executable: str | None = None,
    javascript: bool = True,
) -> Iterator[OfflinePage]:
    """The report at ``path`` loaded in headless Chromium without network (module docstring);
    ``javascript=False`` opens it with scripts disabled (the static images must show)."""
    from playwright.sync_api import sync_playwright

    executable = executable or chromium_executable()
    if executable is None:
        raise FileNotFoundError(
            "no Chromium executable found (apt-get install chromium, or set FUSIONZOO_CHROMIUM)"
        )
    with (
        tempfile.TemporaryDirectory(prefix="fusionzoo-chromium-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            args=list(CHROMIUM_ARGS),
            headless=True,
            viewport={"width": width, "height": height},
            java_script_enabled=javascript,
        )
        try:
            result = OfflinePage(page=None)

            def route(route: Any) -> None:
                if route.request.url.startswith("file:"):
                    route.continue_()
                else:
                    result.blocked.append(route.request.url)
                    route.abort()

            context.route("**/*", route)
            page = context.new_page()
            page.on(
                "console",
                lambda message: result.errors.append(message.text) if message.type == "error" else None,
            )
            page.on("pageerror", lambda error: result.errors.append(str(error)))
            page.on(
                "requestfailed",
                lambda request: (
                    result.blocked.append(request.url) if not request.url.startswith("file:") else None
                ),
            )
            context.set_offline(True)
            page.goto(Path(path).resolve().as_uri(), wait_until="load")
            if javascript:
                page.wait_for_function(PLOTS_DRAWN, timeout=60_000)
            result.page = page
            yield result
        finally:
            context.close()
