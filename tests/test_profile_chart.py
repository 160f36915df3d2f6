"""Stage-profile chart: section merging, CJK font (never tofu), ASCII fallback, side-by-side comparison, CLI."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.text import Text
from typer.testing import CliRunner

from data.errors import ChainstageError, ConfigError
from data.labels import load_labels
from data.load import load_report
from models.fonts import CJK_FAMILY, cjk_font_path
from models.predictor import ClassifiedReport
from models.stage_profile import stage_profile
from serve import profile_chart
from serve.analyst_config import load_analyst_config
from serve.cli import app
from serve.profile_chart import (
    chart_depth,
    chart_style,
    contrast_ratio,
    draw_profile_chart,
    outline_numbers,
    profile_rows,
    render_profile_chart,
    save_profile_chart,
    section_bars,
    with_parent_rows,
)

ROOT = Path(__file__).resolve().parents[1]
SHORT, LONG = ROOT / "seeds/003_1e2a77e6e55b6189.txt", ROOT / "seeds/004_d7285df370a477b8.txt"
HAN = re.compile(r"[\u4e00-\u9fff]")


def classified_with_known_labels(path: Path, reading_config) -> ClassifiedReport:
    """A seed report whose unit i gets stage i mod 6 with probability 0.7, so every share can be counted by hand."""
    report = load_report(path, reading_config)
    labels = load_labels()
    probs = np.full((len(report.units), len(labels.names)), 0.06)
    probs[np.arange(len(report.units)), np.arange(len(report.units)) % len(labels.names)] = 0.7
    return ClassifiedReport(report, probs, np.zeros((len(report.units), 4)), labels.names, min_confidence=0.5)


@pytest.fixture(scope="module")
def profiles(reading_config) -> list[dict]:
    return [stage_profile(classified_with_known_labels(path, reading_config), 0) for path in (SHORT, LONG)]


def chart_texts(figure: Figure) -> list[Text]:
    return [text for text in figure.findobj(Text) if text.get_text()]


def test_sections_merge_to_the_deepest_level_that_fits(profiles, reading_config):
    short, long = profiles
    # 003's 一是 lead lines head third-level sections (b1c6cbb), and all its levels fit; 004 has 44 second-level ones
    assert chart_depth(short, 24) == 3 and chart_depth(long, 24) == 1
    assert chart_depth(long, 44) == 2 and chart_depth(long, 1) == 1
    bars = section_bars(long, 1)
    assert [bar.path for bar in bars][:2] == [(), ("一、发展回顾与形势",)]
    assert sum(bar.units for bar in bars) == long["units"]
    # shares of a merged bar are recounted from the units, not averaged over sections
    report = load_report(LONG, reading_config)
    names = load_labels().names
    chapter = [u for u in report.units if u.kind == "body" and u.section_path[:1] == ("一、发展回顾与形势",)]
    expected = {name: sum(u.index % 6 == i for u in chapter) / len(chapter) for i, name in enumerate(names)}
    assert bars[1].units == len(chapter)
    assert bars[1].shares == pytest.approx(expected)


def test_parent_headings_without_units_get_a_row_and_an_outline_number(profiles):
    bars = with_parent_rows(section_bars(profiles[0], 2))
    assert bars[0].path == ("一、2021年工作成效",) and bars[0].units == 0
    assert bars[1].path[0] == "一、2021年工作成效" and bars[1].units > 0
    numbers = outline_numbers([bar.path for bar in bars])
    assert numbers[bars[0].path] == "1" and numbers[bars[1].path] == "1.1" and numbers[bars[2].path] == "1.2"


def test_profile_rows_put_the_whole_report_first(profiles):
    rows = profile_rows(profiles[0])
    assert rows[0]["scope"] == "report" and rows[0]["units"] == profiles[0]["units"]
    assert [row["section_path"] for row in rows[1:]] == [s["section_path"] for s in profiles[0]["sections"]]
    assert all(sum(row[name] for name in load_labels().names) == pytest.approx(1) for row in rows)


def test_chart_draws_chinese_with_the_cjk_font_and_no_tofu(profiles, tmp_path):
    config = load_analyst_config().chart
    with matplotlib.rc_context(chart_style()):
        figure = draw_profile_chart(profiles, load_labels(), config)
        chinese = [text for text in chart_texts(figure) if HAN.search(text.get_text())]
        assert {"科学发现", "人才支撑", "全文", "一、2021年工作成效"} <= {text.get_text() for text in chinese}
        fonts = {font_manager.findfont(text.get_fontproperties()) for text in chinese}
        # the Simplified Chinese face of the collection that chainstage installs, never a system font
        assert {(Path(font.path), font_manager.get_font(font).family_name) for font in fonts} == {
            (cjk_font_path(), CJK_FAMILY)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)" for every tofu box
        png = save_profile_chart(profiles, tmp_path / "profile.png", load_labels(), config)
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 500 and image.shape[1] > 1000


def test_the_tofu_check_catches_a_font_without_chinese():
    figure = Figure()
    figure.text(0.5, 0.5, "科学发现")
    with (matplotlib.rc_context({"font.family": ["DejaVu Sans"]}),
          pytest.warns(UserWarning, match="missing from font")):
        figure.savefig(io.BytesIO(), format="png")


def test_without_a_cjk_font_every_label_is_ascii(profiles, monkeypatch, caplog):
    monkeypatch.setattr(profile_chart, "cjk_font_properties", lambda: None)
    with caplog.at_level(logging.WARNING), matplotlib.rc_context(chart_style()):
        figure = draw_profile_chart(profiles, load_labels(), load_analyst_config().chart)
    texts = [text.get_text() for text in chart_texts(figure)]
    assert all(text.isascii() for text in texts), [t for t in texts if not t.isascii()]
    assert {"discovery", "talent", "overall", "S1", "S1.1"} <= set(texts)
    assert "noto-cjk-sans-otc" in caplog.text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figure.savefig(io.BytesIO(), format="png")


def test_several_reports_are_compared_side_by_side(profiles):
    with matplotlib.rc_context(chart_style()):
        figure = draw_profile_chart(profiles, load_labels(), load_analyst_config().chart)
    compare, *panels = figure.axes
    assert len(panels) == 2
    assert [tick.get_text() for tick in compare.get_yticklabels()] == [p["report_id"] for p in profiles]
    talent = next(c for c in compare.containers if c.get_label() == "人才支撑")
    assert [patch.get_width() for patch in talent] == pytest.approx([p["overall"]["人才支撑"] for p in profiles])
    # each report's panel starts with its whole text, then its sections in document order
    ticks = [tick.get_text() for tick in panels[1].get_yticklabels()]
    assert ticks[:3] == ["全文", "篇首", "一、发展回顾与形势"]
    assert len(ticks) == 1 + len(section_bars(profiles[1], 1))


# Draws the chart the way `chainstage profile --plot` does, in a process of its own, and prints what it shows.
CHART_IN_A_NEW_PROCESS = """
import json, sys
import matplotlib
from matplotlib import font_manager
from data.labels import load_labels
from serve.analyst_config import load_analyst_config
from serve.profile_chart import chart_style, draw_profile_chart

with matplotlib.rc_context(chart_style()):
    figure = draw_profile_chart(json.load(sys.stdin), load_labels(), load_analyst_config().chart)
    legend = figure.legends[0].get_texts()
    font = font_manager.get_font(font_manager.findfont(legend[0].get_fontproperties())).family_name
print(json.dumps({"legend": [text.get_text() for text in legend], "font": font,
                  "ticks": [tick.get_text() for tick in figure.axes[1].get_yticklabels()]}, ensure_ascii=False))
"""


def test_a_font_cache_built_before_the_font_existed_still_gives_chinese_labels(profiles, tmp_path):
    """Issue 17: `make run` wrote matplotlib's font cache before apt installed a CJK font, nothing rewrote it, and
    every chart stayed ASCII. Here the cache is written afresh, then made to list no font of the machine at all
    (matplotlib's own keep relative paths), so the test means the same whatever fonts this machine has."""
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "mplconfig")}  # a fresh machine: no cache yet
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env=env, check=True, timeout=300)
    (cache,) = (tmp_path / "mplconfig").glob("fontlist-*.json")
    fonts = json.loads(cache.read_text(encoding="utf-8"))
    fonts["ttflist"] = [font for font in fonts["ttflist"] if not Path(font["fname"]).is_absolute()]
    cache.write_text(json.dumps(fonts), encoding="utf-8")
    drawn = subprocess.run([sys.executable, "-c", CHART_IN_A_NEW_PROCESS], input=json.dumps(profiles, default=float),
                           env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert drawn.returncode == 0, drawn.stderr
    shown = json.loads(drawn.stdout)
    assert shown["legend"] == list(load_labels().names) and shown["font"] == CJK_FAMILY
    # sections by their Chinese headings (indented by depth), not S1, S1.1
    assert [tick.strip() for tick in shown["ticks"][:2]] == ["全文", "一、2021年工作成效"]
    assert "no Chinese font" not in drawn.stderr


def test_svg_keeps_text_as_paths_and_bad_suffixes_name_the_file(profiles, tmp_path):
    svg = render_profile_chart(profiles[:1], load_labels(), load_analyst_config().chart, "svg").decode()
    assert "<svg" in svg and "<text" not in svg  # glyphs as paths: the page needs no font to show them
    assert render_profile_chart(profiles[:1], load_labels(), load_analyst_config().chart, "svg").decode() == svg
    with pytest.raises(ChainstageError, match="chart.jpg"):
        save_profile_chart(profiles, tmp_path / "chart.jpg", load_labels(), load_analyst_config().chart)
    with pytest.raises(ChainstageError, match="no stage profile"):
        draw_profile_chart([], load_labels(), load_analyst_config().chart)


def test_segment_labels_stay_readable():
    for label in load_labels().labels:
        assert contrast_ratio(profile_chart.readable_on(label.color), label.color) >= 4.5, label.name


def test_bad_chart_config_names_the_key():
    with pytest.raises(ConfigError, match="chart.max_bars"):
        load_analyst_config(overrides=["chart.max_bars=0"])
    with pytest.raises(ConfigError, match="page.text_color"):
        load_analyst_config(overrides=["page.text_color=black"])


def test_cli_profile_prints_every_report_and_draws_one_chart(tiny_model, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    chart = tmp_path / "out" / "profile.png"
    seeds = [str(ROOT / "seeds/000_dd476d6a277efa8f.txt"), str(SHORT)]
    result = CliRunner().invoke(app, ["profile", *seeds, str(empty), "--model", str(tiny_model), "--format", "jsonl",
                                      "--plot", str(chart)])
    assert result.exit_code == 1 and "empty.txt" in result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["report_id"] for r in rows if r["scope"] == "report"] == ["000_dd476d6a277efa8f", "003_1e2a77e6e55b6189"]
    assert all(sum(r[name] for name in load_labels().names) == pytest.approx(1) for r in rows)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = CliRunner().invoke(app, ["profile", str(SHORT), "--model", str(tiny_model)])
    assert table.exit_code == 0 and "全文" in table.stdout and "（一）面向长远发展" in table.stdout
