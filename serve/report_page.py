"""One self-contained HTML page per report: stage-highlighted text, filter, section summaries, profile chart.

Everything the page needs is inline (CSS, JS, the chart as SVG whose text is drawn as paths), and a
Content-Security-Policy forbids any fetch, so it opens offline and never touches the network.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from data.errors import ChainstageError, ConfigError
from data.labels import LabelSet
from data.segment import Section
from models.predictor import ClassifiedReport
from models.stage_profile import stage_profile
from serve.analyst_config import AnalystConfig
from serve.profile_chart import contrast_ratio, readable_on, render_profile_chart
from serve.section_labels import short_title

TEMPLATE = Path(__file__).with_name("report_page.html.j2")
MIN_CONTRAST = 4.5  # WCAG AA for body text
# Debian's chromium, headless, with every background service that could reach the network switched off
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class SummaryLike(Protocol):
    """What the page reads from a section summary (models.summarizer.SectionSummary)."""

    section_path: Sequence[str]
    text: str


def tint(color: str, amount: float) -> str:
    """``color`` mixed into white: ``amount`` 0 is white, 1 the colour itself."""
    channels = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(255 - (255 - c) * amount):02X}" for c in channels)


def badges(names: Sequence[str]) -> dict[str, str]:
    """The shortest leading characters that tell the stage names apart (科, 技, 产 ...): a cue beside colour."""
    for length in range(1, max(len(name) for name in names) + 1):
        short = {name: name[:length] for name in names}
        if len(set(short.values())) == len(names):
            return short
    return {name: name for name in names}


def inline_svg(svg: bytes) -> str:
    """matplotlib's SVG made fit to sit inside HTML: no XML prolog, doctype, metadata, comments or namespace
    URLs (the HTML parser supplies the SVG namespace), labelled by the figure caption."""
    text = svg.decode("utf-8")
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>|<!--.*?-->", "", text, flags=re.DOTALL)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    return text.replace("<svg", '<svg role="img" aria-labelledby="chart-caption"', 1)


def _stages(labels: LabelSet, overall: dict[str, float], config: AnalystConfig) -> list[dict[str, Any]]:
    short = badges(labels.names)
    stages = []
    for label in labels.labels:
        background = tint(label.color, config.page.tint)
        if contrast_ratio(config.page.text_color, background) < MIN_CONTRAST:
            raise ConfigError(f"configs/analyst.yaml: page.tint {config.page.tint} leaves {label.name} text below "
                              f"{MIN_CONTRAST}:1 contrast; lower it")
        stages.append({"key": label.key, "name": label.name, "color": label.color, "tint": background,
                       "badge": short[label.name], "badge_text": readable_on(label.color),
                       "definition": label.definition, "share": overall.get(label.name, 0.0)})
    return stages


def _stage_list(stages: Iterable[str]) -> str:
    """Stage keys, each once, space-separated: the page's CSS filter matches one of them with ~=."""
    return " ".join(sorted(set(stages)))


def _page_sections(classified: ClassifiedReport, labels: LabelSet, summaries: Sequence[SummaryLike],
                   config: AnalystConfig) -> list[dict[str, Any]]:
    """The section tree as the template walks it: heading unit, paragraphs of units with their stages, children,
    summary, and the short label that the table of contents shows."""
    report = classified.report
    keys = {label.name: label.key for label in labels.labels}
    short = badges(labels.names)
    rows = classified.rows()
    by_path = {tuple(summary.section_path): summary.text for summary in summaries}
    counter = iter(range(len(report.units) + 1))

    def page_unit(index: int) -> dict[str, Any]:
        row = rows[index]
        return {**row, "anchor": f"u{index}", "stage": keys[row["label"]], "badge": short[row["label"]]}

    def build(section: Section) -> dict[str, Any]:
        paragraphs: list[list[dict[str, Any]]] = []
        previous_end = None
        for unit in section.units:
            if unit.kind == "heading":
                continue
            # a line break between two units in the normalised text starts a new paragraph
            if previous_end is None or "\n" in report.text[previous_end:unit.start]:
                paragraphs.append([])
            paragraphs[-1].append(page_unit(unit.index))
            previous_end = unit.end
        title = section.title or "篇首"
        return {
            "anchor": f"s{next(counter)}",
            "title": title,
            "label": short_title(title, config.page.toc_title_chars),
            "heading": page_unit(section.heading.index) if section.heading else None,
            "heading_level": min(len(section.path) + 1, 6),
            "paragraphs": [{"units": units, "stages": _stage_list(unit["stage"] for unit in units)}
                           for units in paragraphs],
            # under a filter a section stays on screen while it or a subsection has a sentence of that stage
            "stages": _stage_list(keys[rows[unit.index]["label"]] for unit in section.all_units()
                                  if unit.kind != "heading"),
            "children": [build(child) for child in section.children],
            "summary": by_path.get(section.path),
            "body_units": sum(unit.kind == "body" for unit in section.all_units()),
        }

    root = build(report.root)
    # the text before the first heading is a section of its own (篇首) only when it has units
    preface = {**root, "children": [], "body_units": sum(unit.kind == "body" for unit in report.root.units),
               "stages": _stage_list(unit["stage"] for paragraph in root["paragraphs"] for unit in paragraph["units"])}
    return ([preface] if root["paragraphs"] else []) + root["children"]


def render_report_page(classified: ClassifiedReport, summaries: Sequence[SummaryLike], labels: LabelSet,
                       config: AnalystConfig, model: str) -> str:
    """The whole page as one HTML string."""
    import jinja2
    from markupsafe import Markup

    profile = stage_profile(classified, evidence_per_stage=0)
    rows = classified.rows()
    sections = _page_sections(classified, labels, summaries, config)
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    template = environment.from_string(TEMPLATE.read_text(encoding="utf-8"))
    chart = render_profile_chart([profile], labels, config.chart, "svg")
    return template.render(
        report_id=classified.report.report_id,
        source=Path(classified.report.source).name,
        model=model,
        units=len(rows),
        body_units=profile["units"],
        uncertain_units=sum(row["uncertain"] for row in rows if row["kind"] == "body"),
        min_confidence=classified.min_confidence,
        stages=_stages(labels, profile["overall"], config),
        shares_text="，".join(f"{name} {share:.0%}" for name, share in profile["overall"].items()),
        chart_svg=Markup(inline_svg(chart)),
        toc=sections,
        sections=sections,
        text_color=config.page.text_color,
    )


def write_report_page(classified: ClassifiedReport, summaries: Sequence[SummaryLike], labels: LabelSet,
                      config: AnalystConfig, model: str, path: Path) -> Path:
    """Write the page to ``path`` (UTF-8)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report_page(classified, summaries, labels, config, model), encoding="utf-8")
    return path


def screenshot_page(page: Path, png: Path, config: AnalystConfig) -> Path:
    """Open the page in headless Chromium (Debian's package, never a browser download) and save what a reader
    sees first."""
    executable = shutil.which("chromium")
    if executable is None:
        raise ChainstageError(f"{png}: no screenshot without Chromium; install Debian's package: apt-get install "
                              "chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        raise ChainstageError(f"{png}: no screenshot without Playwright; pip install -e '.[browser]'") from err
    png.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": config.page.screenshot_width,
                                             "height": config.page.screenshot_height})
            tab.route(re.compile(r"^(?!file:)"), lambda route: route.abort())  # the page needs nothing else
            tab.goto(page.resolve().as_uri())
            # focus the first full sentence (not a title line or a signature) so that its tooltip shows
            tab.evaluate("""Array.from(document.querySelectorAll('#text .unit.body'))
                .find((u) => u.querySelector('.text').textContent.endsWith('。'))?.focus({preventScroll: true})""")
            tab.screenshot(path=str(png))
        finally:
            browser.close()
    return png
