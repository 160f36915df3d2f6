"""Segmentation of full-length provincial government work reports (data/corpus/provincial-2026), hand-checked."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from data.load import load_report

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus" / "provincial-2026"


@pytest.fixture(scope="module")
def guangdong(reading_config):
    return load_report(CORPUS / "guangdong_2026_zfgzbg.txt", reading_config)


@pytest.fixture(scope="module")
def gansu(reading_config):
    return load_report(CORPUS / "gansu_2026_zfgzbg.txt", reading_config)


def _unit(report, text):
    return next(unit for unit in report.units if unit.text == text)


def test_lead_lines_head_their_paragraphs(guangdong):
    lead = _unit(guangdong, "三是加快推进科技创新和产业创新深度融合。")
    assert lead.kind == "heading"
    assert lead.section_path == ("一、2025年和“十四五”时期工作回顾", "三是加快推进科技创新和产业创新深度融合")
    review = next(section for section in guangdong.sections() if section.title.startswith("一、2025年"))
    assert [child.title[:2] for child in review.children] == ["一是", "二是", "三是", "四是", "五是", "六是"]
    # the review chapter is no longer one long section: its own body is the opening paragraph only
    assert len([unit for unit in review.units if unit.kind == "body"]) <= 5


def test_date_and_venue_line_is_one_body_unit_of_the_front_matter(guangdong):
    line = _unit(guangdong, "——2026年1月26日在广东省第十四届人民代表大会第五次会议上")
    assert line.kind == "body"
    assert line.section_path == ()
    assert _unit(guangdong, "广东省省长 孟凡利").section_path == ()


def test_appendix_lists_nest_under_the_appendix(guangdong):
    item = _unit(guangdong, "一、提高低保、特困人员、孤儿基本生活与残疾人两项补贴和重点群体救助保障水平。")
    assert item.kind == "heading"
    assert item.section_path[0] == "附件1"
    chapters = [section.title for section in guangdong.root.children]
    assert chapters[:3] == ["一、2025年和“十四五”时期工作回顾", "二、“十五五”时期的主要目标和重点任务",
                            "三、2026年工作安排"]
    assert "附件1" in chapters
    assert not any(title.startswith("二、加快建立长期护理") for title in chapters)


def test_unnumbered_titles_are_chapters_where_chapters_are_not_numbered(gansu, guangdong):
    assert [section.title for section in gansu.root.children] == [
        "“十四五”时期工作回顾", "“十五五”时期的主要目标任务", "2026年重点工作"]
    tasks = _unit(gansu, "（二）加快建设现代化产业体系")
    assert tasks.section_path == ("2026年重点工作", "（二）加快建设现代化产业体系")
    # where chapters are numbered, the same kind of title heads a part of a chapter
    assert _unit(guangdong, "主要目标").section_path == ("二、“十五五”时期的主要目标和重点任务", "主要目标")


def test_web_page_furniture_is_marked_and_never_joined(gansu):
    kinds = {unit.text: unit.kind for unit in gansu.units[:20]}
    for text in ("# published： 2026-02-10", "下载", "【字号：", "来源：甘肃日报", "时间：2026-02-10"):
        assert kinds[text] == "furniture", text
    assert kinds["甘肃省省长 任振鹤"] == "body"


def test_no_section_of_any_corpus_report_is_left_unstructured(reading_config):
    for path in sorted(CORPUS.glob("*.txt")):
        report = load_report(path, reading_config)
        body = Counter(unit.section_path for unit in report.units if unit.kind == "body")
        assert body.most_common(1)[0][1] <= 210, path.name
        assert len(report.sections()) >= 15, path.name


def test_a_lead_line_ends_at_its_first_clause_end(reading_config, seed_paths):
    report = load_report(next(path for path in seed_paths if path.name.startswith("003")), reading_config)
    lead = _unit(report, "一是高标准编制《深圳市科技创新“十四五”规划》，描绘我市实现科技自立自强“作战蓝图”；")
    assert lead.kind == "heading"


def test_a_bracket_left_alone_on_its_line_rejoins_its_heading(reading_config):
    """yunnan's text breaks "（三）" after its opening bracket; the bracket line is not page furniture."""
    yunnan = load_report(CORPUS / "yunnan_2026_zfgzbg.txt", reading_config)
    heading = _unit(yunnan, "（三）改革开放持续深化、互促共进。")
    assert heading.kind == "heading"
    assert heading.section_path[-1] == "（三）改革开放持续深化、互促共进"
    assert not [unit for unit in yunnan.units if unit.text == "（"]
