"""Benchmark: how fast the stakeholder report opens in a browser, and how big it is.

Target (issue #9): the index opens in at most 2 s. Builds the report, then opens
``index.html`` (and, for information, the largest run page) in headless Chromium from
disk, ``--repeats`` times each in a fresh page, and takes the browser's own navigation
timing: navigation start to the end of the ``load`` event
(``performance.getEntriesByType("navigation")``), plus the wall time of ``page.goto``.
Reports the medians and the sizes in bytes; writes ``benchmarks/results/report_open.json``.

Data: this checkout's registry and records when its database holds a deployed model
(``--source repo``), else the report tests' small world in a temporary folder
(``--source world``; ``auto`` picks). The repository's own records are only read; the
report is then written to its ``monitoring/reports``.

    .venv/bin/python benchmarks/bench_report.py [--source auto|repo|world] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 2.0
CHROMIUM = "/usr/bin/chromium"


def _repo_has_models() -> bool:
    from lstmops import paths

    url = paths.database_url(REPO)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return False
    from lstmops.registry.versions import Registry

    return any(Registry(url).aliases(p).get("champion") for p in Registry(url).problems())


def build(source: str) -> tuple[Path, str, float]:
    """Build the report; returns the index path, which data it used, and the seconds the build took."""
    from lstmops import paths
    from lstmops.config import load_settings
    from lstmops.monitoring.report import build_report

    if source == "repo" or (source == "auto" and _repo_has_models()):
        from lstmops.registry.versions import Registry
        from lstmops.store.records import Store

        url = paths.database_url(REPO)
        settings, registry, store, root, source = load_settings(paths.params_file(REPO)), Registry(url), Store(url), \
            REPO, "repo"
    else:
        sys.path.insert(0, str(REPO / "tests"))
        from report_world import build_world

        world = build_world(Path(tempfile.mkdtemp(prefix="lstmops-bench-report-")))
        settings, registry, store, root, source = world.settings, world.registry, world.store, world.root, "world"
    started = time.perf_counter()
    index = build_report(settings, registry=registry, store=store, root=root)
    return index, source, time.perf_counter() - started


def open_times(browser, path: Path, repeats: int) -> dict:
    """Median seconds from navigation start to the end of ``load``, and of ``page.goto``, over ``repeats``."""
    load, goto = [], []
    for _ in range(repeats):
        page = browser.new_page()
        started = time.perf_counter()
        page.goto(path.as_uri(), wait_until="load")
        goto.append(time.perf_counter() - started)
        load.append(page.evaluate("() => { const n = performance.getEntriesByType('navigation')[0];"
                                  " return (n.loadEventEnd - n.startTime) / 1000; }"))
        page.close()
    return {"load_event_s": load, "median_load_event_s": statistics.median(load), "goto_s": goto,
            "median_goto_s": statistics.median(goto), "bytes": path.stat().st_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("auto", "repo", "world"), default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "report_open.json")
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "jax")
    from playwright.sync_api import sync_playwright

    index, source, build_s = build(args.source)
    pages = [p for p in index.parent.glob("*.html") if p.name != "index.html"]
    largest = max(pages, key=lambda p: p.stat().st_size) if pages else None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            result = {"index": open_times(browser, index, args.repeats)}
            if largest is not None:
                result["largest_page"] = {"name": largest.name, **open_times(browser, largest, args.repeats)}
        finally:
            browser.close()
    result |= {"source": source, "repeats": args.repeats, "target_s": TARGET_S, "build_report_s": build_s,
               "pages": len(pages) + 1, "total_bytes": sum(p.stat().st_size for p in index.parent.glob("*.html")),
               "meets_target": result["index"]["median_load_event_s"] <= TARGET_S}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"index opens in {result['index']['median_load_event_s'] * 1000:.1f} ms (median of {args.repeats}, "
          f"navigation start to load end; target {TARGET_S:g} s), {result['index']['bytes']} bytes; "
          f"data: {source}; written to {args.json}")


if __name__ == "__main__":
    main()
