"""A document with a laid-out page (a heading, a figure, a table) and a hostile one, for the viewer's tests;
and a headless Chromium screenshot of a file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from pipeline.export.records import Document, Page

SCRIPT = "<script>document.body.style.background='rgb(0, 255, 0)'</script>"
FIGURE_KEY = "figures/r1/000000/d-00000-001.png"
FIGURE_RGB = (0, 200, 0)
BLOCKS = (
    {"order": 0, "label": "title", "kind": "heading", "text": "# A title", "box_model": [100, 50, 600, 100]},
    {"order": 1, "label": "image", "kind": "figure", "text": "", "box_model": [200, 200, 700, 500]},
    {
        "order": 2,
        "label": "table",
        "kind": "table",
        "text": '<table><tr><td onclick="alert(1)">a</td><td>b</td></tr></table>',
        "box_model": [100, 600, 900, 800],
    },
)


def _block(fields: dict) -> dict:
    figure = FIGURE_KEY if fields["kind"] == "figure" else ""
    return {**fields, "box_px": [], "box_pt": [], "figure": figure}


def page(index: int, blocks: tuple[dict, ...], width_pt: float = 595.0, height_pt: float = 842.0) -> Page:
    markdown = "\n\n".join(b["text"] for b in blocks)
    return Page(
        index, "ok", markdown, "", "", 1, 1, markdown, tuple(_block(b) for b in blocks), width_pt, height_pt
    )


def document(*pages: Page) -> Document:
    return Document("d", "s3://b/<b>x</b>.pdf", "c", "r1", len(pages), "m", "large", "none", "", pages)


def hostile_page(index: int) -> Page:
    """A page whose every text tries to inject markup or script."""
    text = f"# Head {SCRIPT}\n\nbody <img src=x onerror=alert(1)> {SCRIPT}"
    block = {
        "order": 0,
        "label": f"text{SCRIPT}",
        "kind": "text",
        "text": text,
        "box_model": [50, 50, 950, 950],
    }
    return page(index, (block,))


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(html_file: Path, out_png: Path, size: tuple[int, int], profile: Path) -> None:
    """A headless Chromium screenshot of html_file at size (CSS pixels = device pixels)."""
    browser = chromium()
    assert browser is not None
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--user-data-dir={profile}",
            f"--screenshot={out_png}",
            f"--window-size={size[0]},{size[1]}",
            html_file.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=300,  # a hang guard: a browser that never ends must not hold the suite
    )
