"""Screenshots of every section of a runs directory's report, for docs/report.md.

    python benchmarks/report/screenshots.py RUNS_DIR [--out docs/img] [--width 1100] [--prefix report]

Renders ``fusionzoo report RUNS_DIR`` (HTML), opens it in headless Chromium with the network cut off
(:mod:`fusionzoo.report.browser`; fails if the page asks for anything outside the file or logs an
error), and saves the header with the table of contents and each ``<section>`` as a small PNG
(``<prefix>-<section>.png``: downscaled to 900 px wide, at most 1,300 px tall, 256-colour adaptive palette).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from PIL import Image

from fusionzoo.report.base import ResultsView
from fusionzoo.report.browser import offline_page
from fusionzoo.report.output import write_report
from fusionzoo.results.store import ResultsStore

WIDTH, MAX_HEIGHT = 900, 1300


def small_png(data: bytes) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if image.width > WIDTH:
        image = image.resize((WIDTH, round(image.height * WIDTH / image.width)), Image.LANCZOS)
    image = image.crop((0, 0, image.width, min(image.height, MAX_HEIGHT)))
    out = io.BytesIO()
    image.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(out, format="PNG", optimize=True)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--prefix", default="report")
    parser.add_argument("--sections", default="*", help="section reporters to include (fnmatch)")
    args = parser.parse_args()
    page_path = write_report(
        ResultsView.of(ResultsStore(args.runs_dir)), args.runs_dir / "report.html", sections=args.sections
    )
    args.out.mkdir(parents=True, exist_ok=True)
    with offline_page(page_path, width=args.width) as offline:
        page = offline.page
        shots = {"contents": page.locator("header").screenshot()}
        nav = page.locator("nav").screenshot()
        header = Image.open(io.BytesIO(shots["contents"]))
        toc = Image.open(io.BytesIO(nav))
        joined = Image.new("RGB", (max(header.width, toc.width), header.height + toc.height), "white")
        joined.paste(header, (0, 0))
        joined.paste(toc, (0, header.height))
        buffer = io.BytesIO()
        joined.save(buffer, format="PNG")
        shots["contents"] = buffer.getvalue()
        for section in page.locator("main section").all():
            name = section.get_attribute("id").removeprefix("sec-")
            shots[name] = section.screenshot()
        if offline.errors or offline.blocked:
            raise SystemExit(f"the page logged errors {offline.errors} or asked for {offline.blocked}")
    for name, data in shots.items():
        path = args.out / f"{args.prefix}-{name}.png"
        path.write_bytes(small_png(data))
        print(f"{path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
