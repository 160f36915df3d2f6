"""How fast the report page opens and how fast its stage filter applies in headless Chromium, on a full-length
provincial work report (issue 17: 600+ units).

Usage: .venv/bin/python benchmarks/report_page_speed.py [--file FILE] [--rounds N]

1. Classify the report with the default model (`make run` trains it) when it exists. Without it the units get
   stage i mod 6 with a seeded random embedding each, and the script says so: the page's cost depends on the
   number of units, sections and stages shown, not on which stage each unit has.
2. Render the page with `render_report_page`, as `chainstage report` does.
3. Open it in Debian's Chromium (the flags of `chainstage report --screenshot`) `--rounds` times, each in a new tab:
   the navigation timings (first contentful paint, DOMContentLoaded after the page script ran, load).
4. Click every stage button and then 全部, timing with performance.now() in the page from the click to the end
   of the click handler and to the next rendered frame (style, layout and paint included).
5. The same for a baseline in the same run, the page with every section laid out and painted up front
   (`content-visibility: visible`), taking the two pages in turn; and everything again with Chromium's CPU
   throttled 4x, a slow office laptop.

Prints medians in milliseconds; asserts nothing (tests assert behaviour, this script measures).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from models.predictor import ClassifiedReport

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "data/corpus/provincial-2026/guangdong_2026_zfgzbg.txt"

# one click, timed inside the page: to the end of the handler, then to after the next frame has been rendered
# (a requestAnimationFrame callback runs before that frame's style, layout and paint; the timeout after them)
TIMED_CLICK = """async (selector) => {
    const button = document.querySelector(selector);
    const start = performance.now();
    button.click();
    const handled = performance.now();
    await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
    return [handled - start, performance.now() - start];
}"""

# the paint entry can arrive after the load event: a buffered observer waits for it
# the page's rule that skips off-screen sections, and the baseline that draws them all
SKIP_OFFSCREEN = "content-visibility: auto"
DRAW_ALL = "content-visibility: visible"

NAVIGATION = """async () => {
    const paint = await new Promise((resolve) => new PerformanceObserver((list, observer) => {
        const entry = list.getEntriesByName("first-contentful-paint")[0];
        if (entry) {
            observer.disconnect();
            resolve(entry);
        }
    }).observe({type: "paint", buffered: true}));
    const nav = performance.getEntriesByType("navigation")[0];
    return [paint.startTime, nav.domContentLoadedEventEnd, nav.loadEventEnd,
            document.getElementsByTagName("*").length];
}"""


def classified_report(path: Path) -> tuple[ClassifiedReport, str]:
    """The report classified by the default model, or with round-robin stages when there is none."""
    from data.labels import load_labels
    from data.load import load_report
    from data.reading_config import load_reading_config
    from models.folder_layout import default_model_dir, is_model_folder
    from models.predictor import ClassifiedReport, Predictor

    folder = default_model_dir()
    if is_model_folder(folder):
        print(f"model: the default classifier, {folder}")
        return Predictor.load(folder).classify(path), folder.name
    print(f"model: none at {folder} (run `make run` to train it); units get stage i mod 6 instead, probability "
          "0.7 (every 4th 0.3, uncertain), and seeded random embeddings for the summaries")
    report = load_report(path, load_reading_config())
    names = load_labels().names
    count = len(report.units)
    top = np.where(np.arange(count) % 4 == 0, 0.3, 0.7)
    probs = np.tile((1 - top)[:, None] / (len(names) - 1), (1, len(names)))
    probs[np.arange(count), np.arange(count) % len(names)] = top
    embeddings = np.random.default_rng(0).standard_normal((count, 32))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    return ClassifiedReport(report, probs, embeddings, names, min_confidence=0.5), "round-robin stand-in"


def open_and_filter(browser: Browser, page: Path, throttle: float) -> dict[str, list[float]]:
    """One fresh tab with the CPU slowed ``throttle`` times: navigation timings, then every stage button and 全部."""
    times: dict[str, list[float]] = {key: [] for key in ("stage", "stage_frame", "all", "all_frame")}
    tab = browser.new_page(viewport={"width": 1280, "height": 900})
    tab.route(re.compile(r"^(?!file:)"), lambda route: route.abort())
    tab.context.new_cdp_session(tab).send("Emulation.setCPUThrottlingRate", {"rate": throttle})
    tab.goto(page.as_uri(), wait_until="load")
    paint, dom, load, elements = tab.evaluate(NAVIGATION)
    times.update(paint=[paint], dom=[dom], load=[load], elements=[elements])
    stages = tab.eval_on_selector_all("button[data-filter]:not([data-filter=''])",
                                      "(buttons) => buttons.map((b) => b.dataset.filter)")
    for stage in stages:
        handler, frame = tab.evaluate(TIMED_CLICK, f'button[data-filter="{stage}"]')
        times["stage"].append(handler)
        times["stage_frame"].append(frame)
        handler, frame = tab.evaluate(TIMED_CLICK, 'button[data-filter=""]')
        times["all"].append(handler)
        times["all_frame"].append(frame)
    tab.close()
    return times


def measure(pages: dict[str, Path], rounds: int, throttle: float) -> dict[str, dict[str, float]]:
    """Medians per page over ``rounds`` fresh tabs, the pages taken in turn so that a busy machine slows all alike."""
    from playwright.sync_api import sync_playwright

    from serve.report_page import CHROMIUM_ARGS

    times: dict[str, dict[str, list[float]]] = {name: {} for name in pages}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        try:
            for _ in range(rounds):
                for name, page in pages.items():
                    for key, values in open_and_filter(browser, page, throttle).items():
                        times[name].setdefault(key, []).extend(values)
        finally:
            browser.close()
    return {name: {key: statistics.median(values) for key, values in page_times.items()}
            for name, page_times in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=REPORT, help="report to render (default: Guangdong 2026)")
    parser.add_argument("--rounds", type=int, default=5, help="fresh tabs per page and CPU setting (default 5)")
    args = parser.parse_args()
    if shutil.which("chromium") is None:
        sys.exit("no Chromium: apt-get install chromium (Debian's package; the Makefile's system-deps target)")
    from data.labels import load_labels
    from models.summarizer import summarize_report
    from models.summarizer_config import load_summarizer_config
    from serve.analyst_config import load_analyst_config
    from serve.report_page import render_report_page

    classified, model = classified_report(args.file)
    summaries = summarize_report(classified, load_summarizer_config())
    started = time.perf_counter()
    html = render_report_page(classified, summaries, load_labels(), load_analyst_config(), model)
    render_seconds = time.perf_counter() - started
    name = args.file.relative_to(ROOT) if args.file.is_relative_to(ROOT) else args.file
    print(f"report: {name}, {len(classified.report.units)} units, {len(classified.report.sections())} sections")
    print(f"page: {len(html.encode()) / 1024:.0f} KiB, rendered in Python in {render_seconds:.2f} s")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start "
          "(other jobs on the machine slow every figure)")
    with tempfile.TemporaryDirectory(prefix="report-page-") as folder:
        pages = {"page": Path(folder) / "report.html"}
        pages["page"].write_text(html, encoding="utf-8")
        # the baseline in the same run: the same page with every section laid out and painted, as before issue 17
        if html.count(SKIP_OFFSCREEN) == 1:
            pages["all drawn"] = Path(folder) / "all-drawn.html"
            pages["all drawn"].write_text(html.replace(SKIP_OFFSCREEN, DRAW_ALL), encoding="utf-8")
        else:
            print(f"(no `{SKIP_OFFSCREEN}` rule in this page: no baseline row)")
        print(f"medians over {args.rounds} fresh tabs, ms; filter: click each stage button, then 全部, timed to the "
              "end of the handler and to the next rendered frame")
        header = (f"{'page':<10} {'CPU':<10} {'elements':>8} {'first paint':>11} {'DOM ready':>9} {'load':>6} "
                  f"{'stage click':>11} {'frame':>6} {'全部 click':>9} {'frame':>6}")
        print(header)
        for throttle in (1.0, 4.0):
            medians = measure(pages, args.rounds, throttle)
            for page, m in medians.items():
                print(f"{page:<10} {'x1' if throttle == 1 else f'x{throttle:.0f} slower':<10} {m['elements']:>8.0f} "
                      f"{m['paint']:>11.0f} {m['dom']:>9.0f} {m['load']:>6.0f} {m['stage']:>11.1f} "
                      f"{m['stage_frame']:>6.1f} {m['all']:>9.1f} {m['all_frame']:>6.1f}")
            if "all drawn" in medians:
                new, old = medians["page"], medians["all drawn"]
                print(f"{'':<10} {'':<10} ratio page / all drawn: DOM ready {new['dom'] / old['dom']:.2f}, "
                      f"stage frame {new['stage_frame'] / old['stage_frame']:.2f}, "
                      f"全部 frame {new['all_frame'] / old['all_frame']:.2f}")


if __name__ == "__main__":
    main()
