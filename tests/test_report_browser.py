"""The report in a real browser: headless Chromium opens the pages from disk with no network.

Needs Debian's ``chromium`` (``/usr/bin/chromium``; ``apt-get install chromium``) and
Playwright's Python client. Not skipped when Chromium is missing: the report's promise
is that it renders, and a skipped test would not check it (CI installs Chromium).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from report_world import build_world

CHROMIUM = Path("/usr/bin/chromium")


def chromium_path() -> str:
    """Where Chromium is, or a failure that says how to install it."""
    found = CHROMIUM if CHROMIUM.is_file() else shutil.which("chromium")
    if not found:
        pytest.fail("headless Chromium is needed for the report's browser test: apt-get install chromium")
    return str(found)


def open_page(browser, path: Path, shot: Path) -> dict:
    """Open ``path`` in a fresh page; the URLs it requested, its charts' sizes, and a full-page screenshot."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(path.as_uri(), wait_until="load")
    charts = [c.bounding_box() for c in page.query_selector_all(".chart")]
    page.screenshot(path=str(shot), full_page=True)
    title = page.title()
    page.close()
    return {"requested": requested, "charts": charts, "title": title}


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> Path:
    from lstmops.monitoring.report import build_report

    world = build_world(tmp_path_factory.mktemp("browser"))
    index = build_report(world.settings, registry=world.registry, store=world.store, root=world.root)
    return index.parent


def test_the_index_and_a_run_page_render_offline_with_their_charts(reports, tmp_path):
    from playwright.sync_api import sync_playwright

    run_page = next(reports.glob("echo-*.html"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            index = open_page(browser, reports / "index.html", tmp_path / "index.png")
            run = open_page(browser, run_page, tmp_path / "run.png")
        finally:
            browser.close()
    assert index["title"] == "lstmops: models and decisions" and run["title"].startswith("echo: update run")
    for seen in (index, run):
        outside = [url for url in seen["requested"] if not url.startswith(("file://", "data:"))]
        assert not outside, f"the page requested the network: {outside}"
    assert len(run["charts"]) == 2  # skill over time, and the arms' box plots
    for box in run["charts"]:
        assert box is not None and box["width"] > 100 and box["height"] > 50
    for shot in ("index.png", "run.png"):
        data = (tmp_path / shot).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
