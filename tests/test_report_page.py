"""The HTML report page: self-contained, every unit with its stage, and a real headless-Chromium session that
checks highlighting, tooltips on hover and focus, the stage filter, the summaries and that nothing is fetched;
then the same on a full-length provincial work report (issue 17: 687 units, 59 sections)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib
import pytest
from typer.testing import CliRunner

from data.errors import ChainstageError, ConfigError, ReportError
from data.labeled_units import load_labeled
from data.labels import load_labels
from models.classifier_config import load_classifier_config
from models.predictor import Predictor
from models.stage_profile import stage_profile
from models.summarizer import summarize_report
from models.summarizer_config import load_summarizer_config
from serve import report_page
from serve.analyst_config import load_analyst_config
from serve.cli import app
from serve.profile_chart import chart_style, contrast_ratio, draw_profile_chart, render_profile_chart
from serve.report_page import CHROMIUM_ARGS, badges, inline_svg, render_report_page, tint
from serve.section_labels import INDENT, short_title
from training.model_folder import train_and_save

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "seeds/003_1e2a77e6e55b6189.txt"
FULL_REPORT = ROOT / "data/corpus/provincial-2026/guangdong_2026_zfgzbg.txt"
HAN = re.compile(r"[\u4e00-\u9fff]")
S_NUMBER = re.compile(r"^S\d+$")
ARTIFACTS = ROOT / "tests/artifacts"


@pytest.fixture(scope="module")
def tiny_model(tiny_base, tmp_path_factory) -> Path:
    """A tiny classifier fitted hard to the seed it will classify, so that it uses several stages there whatever
    the random tiny base (the filter test needs more than one). The session's plain ``tiny_model`` (conftest.py)
    promises no such spread, so this fixture overrides it in this module."""
    records = [r for r in load_labeled(ROOT / "data/labeled/seeds.jsonl") if r["report_id"] == SEED.stem]
    config = load_classifier_config(overrides=[
        f"model.base={tiny_base}", "train.epochs=10", "train.min_steps=0",
        "train.batch_size=16", "model.max_length=64", "train.patience=50",
        "train.learning_rate=0.003", "model.freeze_embeddings=false", "data.dev_fraction=0"])
    return train_and_save(config, load_labels(), records, tmp_path_factory.mktemp("model") / "tiny", progress=False)


@pytest.fixture(scope="module")
def expected(tiny_model) -> dict:
    """What the page must show, computed through the library: unit rows and section summaries."""
    classified = Predictor.load(tiny_model).classify(SEED)
    return {"rows": classified.rows(), "summaries": summarize_report(classified, load_summarizer_config())}


@pytest.fixture(scope="module")
def page(tiny_model, tmp_path_factory) -> Path:
    """The page, written by the real command."""
    path = tmp_path_factory.mktemp("page") / "report.html"
    result = CliRunner().invoke(app, ["report", str(SEED), "--model", str(tiny_model), "-o", str(path)])
    assert result.exit_code == 0, result.output
    return path


class _Units(HTMLParser):
    """Collects the attributes of every unit span and every URL-bearing attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.units: list[dict[str, str | None]] = []
        self.links: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        values = dict(attrs)
        if "data-unit-id" in values:
            self.units.append(values)
        self.links += [value or "" for key, value in attrs if key in ("href", "src", "action", "xlink:href")]


def test_page_is_one_self_contained_file(page, expected):
    html = page.read_text(encoding="utf-8")
    parser = _Units()
    parser.feed(html)
    assert '<html lang="zh-CN">' in html
    assert not re.search(r"(https?:)?//[\w.-]+\.\w", html.replace("http-equiv", "")), "an external URL"
    assert all(link.startswith("#") for link in parser.links), [x for x in parser.links if not x.startswith("#")]
    assert not {"link", "img", "iframe", "object", "embed"} & parser.tags
    assert "default-src 'none'" in html  # the Content-Security-Policy forbids any fetch
    keys = {label.name: label.key for label in load_labels().labels}
    rows = expected["rows"]
    assert [u["data-unit-id"] for u in parser.units] == [r["unit_id"] for r in rows]
    assert [u["data-stage"] for u in parser.units] == [keys[r["label"]] for r in rows]
    assert [u["data-uncertain"] == "true" for u in parser.units] == [r["uncertain"] for r in rows]
    assert "<svg" in html and "</svg>" in html
    # the table of contents counts the body units under each section, subsections included
    counts = dict(re.findall(r'href="#s\d+">([^<]+)</a> <span class="count">(\d+) 句', html))
    chapter = "一、2021年工作成效"
    assert int(counts[chapter]) == sum(r["kind"] == "body" and r["section_path"][:1] == [chapter] for r in rows)


def test_command_names_an_unreadable_file(tiny_model, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    result = CliRunner().invoke(app, ["report", str(empty), "--model", str(tiny_model), "-o", str(tmp_path / "x.html")])
    assert result.exit_code != 0 and isinstance(result.exception, ReportError) and "empty.txt" in str(result.exception)
    assert not (tmp_path / "x.html").exists()


def test_badges_tints_and_contrast_checks(tiny_model):
    assert badges(["科学发现", "技术发明", "产业发展", "人才支撑", "生态优化", "其他"]) == {
        "科学发现": "科", "技术发明": "技", "产业发展": "产", "人才支撑": "人", "生态优化": "生", "其他": "其"}
    assert badges(["产业发展", "产业链"]) == {"产业发展": "产业发", "产业链": "产业链"}
    assert tint("#0072B2", 0.0) == "#FFFFFF" and tint("#0072B2", 1.0) == "#0072B2"
    classified = Predictor.load(tiny_model).classify("一、基础研究。加强国家实验室建设。")
    # a full-strength blue background would leave dark text below 4.5:1, so the page refuses to be written
    with pytest.raises(ConfigError, match="page.tint"):
        render_report_page(classified, [], load_labels(), load_analyst_config(overrides=["page.tint=1.0"]), "tiny")


def test_inline_svg_drops_prolog_metadata_and_namespace_urls():
    svg = (b'<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/x.dtd">\n'
           b'<svg xmlns:xlink="http://www.w3.org/1999/xlink" width="10pt" xmlns="http://www.w3.org/2000/svg">'
           b'<metadata><rdf:RDF>http://purl.org/dc</rdf:RDF></metadata><!-- made by x --><path d="M0 0"/></svg>')
    assert inline_svg(svg) == '<svg role="img" aria-labelledby="chart-caption" width="10pt"><path d="M0 0"/></svg>'


# ------------------------------------------------------------------------------------------------------------------
# The real browser


def chromium_or_skip() -> str:
    """Debian's chromium, installed with apt-get when it is missing; skip only where that cannot be done."""
    found = shutil.which("chromium")
    if not found and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "fonts-wqy-microhei"], capture_output=True,
                       timeout=1200, env=env)
        found = shutil.which("chromium")
    if not found:
        pytest.skip("Chromium is not installed and cannot be installed here (Debian's `chromium` via apt-get as root)")
    return found


def _rgb(css: str) -> str:
    """'rgb(1, 2, 3)' -> '#010203'."""
    red, green, blue = (int(v) for v in re.findall(r"\d+", css)[:3])
    return f"#{red:02X}{green:02X}{blue:02X}"


@pytest.mark.browser
def test_page_in_headless_chromium(page, expected, capsys):
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    labels = load_labels()
    keys = {label.name: label.key for label in labels.labels}
    config = load_analyst_config()
    rows = expected["rows"]
    stages_present = sorted({keys[r["label"]] for r in rows if r["kind"] != "heading"})
    assert len(stages_present) >= 2, "the tiny model should use at least two stages, or the filter test means nothing"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        requests: list[str] = []
        context.on("request", lambda request: requests.append(request.url))  # every request, file: ones too
        # and should the page try the network anyway, the request fails instead of leaving the machine
        context.route(re.compile(r"^(?!file:)"), lambda route: route.abort())
        tab = context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.goto(page.as_uri())
        tab.wait_for_load_state("networkidle")
        assert tab.evaluate("document.documentElement.lang") == "zh-CN"

        # every unit is rendered, in order, with its stage and that stage's colour
        rendered = tab.evaluate("""() => Array.from(document.querySelectorAll('#text .unit')).map((u) => {
            const box = u.getBoundingClientRect();
            const style = getComputedStyle(u);
            return {id: u.dataset.unitId, stage: u.dataset.stage, text: u.querySelector('.text').textContent,
                    visible: box.width > 0 && box.height > 0, background: style.backgroundColor, color: style.color,
                    uncertain: u.classList.contains('uncertain'), badge: u.querySelector('.badge').textContent};
        })""")
        assert [u["id"] for u in rendered] == [r["unit_id"] for r in rows]
        assert [u["text"] for u in rendered] == [r["text"] for r in rows]
        assert [u["stage"] for u in rendered] == [keys[r["label"]] for r in rows]
        assert all(u["visible"] for u in rendered)
        for unit, row in zip(rendered, rows, strict=True):
            label = labels.by_name(row["label"])
            assert _rgb(unit["background"]) == tint(label.color, config.page.tint), unit["id"]
            assert contrast_ratio(_rgb(unit["color"]), _rgb(unit["background"])) >= 4.5, unit["id"]
            assert unit["uncertain"] == row["uncertain"] and unit["badge"].endswith("？") == row["uncertain"]

        # hover shows the calibrated probability and the runner-up
        body = [i for i, r in enumerate(rows) if r["kind"] == "body"]
        first, second = rows[body[0]], rows[body[1]]
        tab.hover(f"#u{body[0]} .text")
        tip = tab.locator(f"#u{body[0]}-tip")
        assert tip.is_visible()
        assert f"{first['probability']:.2f}" in tip.text_content() and first["second_label"] in tip.text_content()
        tab.mouse.move(0, 0)

        # keyboard: Tab from the last filter button enters the text; arrows move unit by unit and show the tooltip
        tab.locator("button[data-filter]").last.focus()
        tab.keyboard.press("Tab")
        assert tab.evaluate("document.activeElement.id") == "u0"
        for _ in range(body[1]):
            tab.keyboard.press("ArrowDown")
        assert tab.evaluate("document.activeElement.id") == f"u{body[1]}"
        tip = tab.locator(f"#u{body[1]}-tip")
        assert tip.is_visible() and second["second_label"] in tip.text_content()
        ARTIFACTS.mkdir(exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / "report-page-focus.png"))

        # the filter shows one stage's sentences only, and 0 brings everything back
        stage = stages_present[0]
        tab.click(f'button[data-filter="{stage}"]')
        assert tab.get_attribute(f'button[data-filter="{stage}"]', "aria-pressed") == "true"
        shown = tab.evaluate("""() => Array.from(document.querySelectorAll('#text .unit.sentence')).map((u) =>
            [u.dataset.stage, u.getBoundingClientRect().height > 0])""")
        assert shown and all(visible == (unit_stage == stage) for unit_stage, visible in shown)
        count = sum(1 for r in rows if r["kind"] == "body" and keys[r["label"]] == stage)
        assert f"{count} 句" in tab.text_content("#filter-status")
        tab.keyboard.press("0")
        assert tab.evaluate("Array.from(document.querySelectorAll('#text .unit')).every((u) => u.checkVisibility())")

        # the section tree with each section's summary
        summaries = tab.evaluate("""() => Array.from(document.querySelectorAll('nav.toc .summary')).map((s) =>
            [s.textContent, s.getBoundingClientRect().height > 0])""")
        assert expected["summaries"] and len(summaries) == len(expected["summaries"])
        assert [text for text, _ in summaries] == ["摘要" + s.text for s in expected["summaries"]]
        assert all(visible for _, visible in summaries)
        toc = tab.locator("nav.toc a").all_text_contents()
        assert "一、2021年工作成效" in toc and "（一）面向长远发展，加强科技创新系统谋划" in toc
        assert tab.locator("figure.chart svg").bounding_box()["height"] > 100

        path = ARTIFACTS / "report-page.png"
        tab.screenshot(path=str(path))
        browser.close()
    with capsys.disabled():
        print(f"\nreport page screenshots: {path} and {ARTIFACTS / 'report-page-focus.png'}")
    assert not errors, errors
    assert requests == [page.as_uri()], f"the page made network requests: {requests[1:]}"


@pytest.mark.browser
def test_report_command_saves_a_screenshot(tiny_model, tmp_path):
    chromium_or_skip()
    import matplotlib.image

    png = tmp_path / "page.png"
    result = CliRunner().invoke(app, ["report", str(SEED), "--model", str(tiny_model), "-o", str(tmp_path / "r.html"),
                                      "--screenshot", str(png)])
    assert result.exit_code == 0, result.output
    page = load_analyst_config().page
    assert matplotlib.image.imread(png).shape[:2] == (page.screenshot_height, page.screenshot_width)


def test_screenshot_without_chromium_says_how_to_install_it(page, tmp_path, monkeypatch):
    monkeypatch.setattr(report_page.shutil, "which", lambda name: None)
    with pytest.raises(ChainstageError, match="apt-get install chromium"):
        report_page.screenshot_page(page, tmp_path / "x.png", load_analyst_config())


# ------------------------------------------------------------------------------------------------------------------
# A full-length provincial work report (issue 17)


@pytest.fixture(scope="module")
def full_report(tiny_model, tmp_path_factory) -> dict:
    """The Guangdong 2026 work report classified by the tiny model, and its page written by the real command."""
    path = tmp_path_factory.mktemp("full") / "report.html"
    result = CliRunner().invoke(app, ["report", str(FULL_REPORT), "--model", str(tiny_model), "-o", str(path)])
    assert result.exit_code == 0, result.output
    return {"page": path, "classified": Predictor.load(tiny_model).classify(FULL_REPORT)}


def test_full_report_chart_rows_are_short_chinese_headings(full_report):
    classified = full_report["classified"]
    labels, config = load_labels(), load_analyst_config().chart
    profile = stage_profile(classified, evidence_per_stage=0)
    # the chart in the page is exactly the figure checked here
    html = full_report["page"].read_text(encoding="utf-8")
    svg = inline_svg(render_profile_chart([profile], labels, config, "svg"))
    assert svg in html
    with matplotlib.rc_context(chart_style()):
        figure = draw_profile_chart([profile], labels, config)
    rows = [tick.get_text() for tick in figure.axes[0].get_yticklabels()]
    assert len(rows) > 5
    headings = {short_title(section.title, config.title_chars) for section in classified.report.sections()}
    for row in rows:
        assert HAN.search(row) and not S_NUMBER.match(row.strip()), row
        assert row in ("全文", "篇首") or row.lstrip(INDENT) in headings, row
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == list(labels.names)


@pytest.mark.browser
def test_full_report_in_headless_chromium(full_report):
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    classified = full_report["classified"]
    rows = classified.rows()
    assert len(rows) > 600
    keys = {label.name: label.key for label in load_labels().labels}
    width = load_analyst_config().page.toc_title_chars
    # the text before the first heading (title, date and venue, 各位代表) is a section of its own, 篇首
    titles = ["篇首"] * any(not r["section_path"] for r in rows) + [s.title for s in classified.report.sections()]
    body_stages = [keys[r["label"]] for r in rows if r["kind"] == "body"]
    stages = sorted(set(body_stages), key=body_stages.count, reverse=True)
    assert len(stages) >= 2, "the tiny model should use at least two stages here, or the filter test means nothing"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.route(re.compile(r"^(?!file:)"), lambda route: route.abort())
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.goto(full_report["page"].as_uri())

        # every section label shown is its Chinese heading, cut to the configured width, never an S-number
        toc = tab.evaluate("""() => Array.from(document.querySelectorAll('nav.toc a')).map((a) =>
            [a.textContent, a.title, a.getBoundingClientRect().height > 0])""")
        assert [title or label for label, title, _ in toc] == titles
        for (label, _, visible), heading in zip(toc, titles, strict=True):
            assert visible and HAN.search(label) and not S_NUMBER.match(label), label
            assert label == short_title(heading, width)
        assert any(title for _, title, _ in toc), "no heading here is long enough to be cut: the test is too easy"
        shown = tab.evaluate("() => Array.from(document.querySelectorAll('#text :is(h2, h3, h4, h5, h6) .text'))"
                             ".map((h) => h.textContent)")
        assert shown and all(HAN.search(h) and not S_NUMBER.match(h) for h in shown)

        # a stage filter hides exactly the other stages' sentences, and the headings of sections without that stage
        visibility = """() => Array.from(document.querySelectorAll('#text .unit')).map((u) =>
            u.getBoundingClientRect().height > 0)"""
        for stage in stages[:2]:
            tab.click(f'button[data-filter="{stage}"]')
            visible = tab.evaluate(visibility)
            for row, seen in zip(rows, visible, strict=True):
                if row["kind"] == "heading":
                    path = row["section_path"]
                    expected = any(keys[r["label"]] == stage and r["kind"] != "heading"
                                   and r["section_path"][:len(path)] == path for r in rows)
                else:
                    expected = keys[row["label"]] == stage
                assert seen == expected, (stage, row["unit_id"], row["text"])
            assert f"{body_stages.count(stage)} 句" in tab.text_content("#filter-status")
        tab.click('button[data-filter=""]')
        assert all(tab.evaluate(visibility))
        browser.close()
    assert not errors, errors
