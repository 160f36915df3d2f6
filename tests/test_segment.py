"""Segmentation: hypothesis invariants, plus hand-checked traps from the seed reports."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.load import load_report, report_from_text
from data.normalize import normalize_text
from data.segment import segment_report

PIECES = [
    "科技", "创新", "实验室", "企业", "人才", "10065.7", "亿元", "，", "。", "；", "！", "？", "!", "?", ";",
    "”", "“", "（", "）", "(", ")", "\n", "\n\n", " ", "  ", "一、", "（一）", "(二)", "1.", "2、", "——",
    "评论 (0)", "本文转载自", "R&D", ",", ":", "\r\n", "\u3000",
]
texts = st.lists(st.sampled_from(PIECES), min_size=1, max_size=60).map("".join)


def _segment(text, config):
    return segment_report(normalize_text(text, config), "t", "<test>", config)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_units_rebuild_the_text_less_whitespace(reading_config, text):
    report = _segment(text, reading_config)
    joined = "".join(unit.text for unit in report.units)
    assert re.sub(r"\s", "", joined) == re.sub(r"\s", "", report.text)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_offsets_slice_back_and_units_are_not_empty(reading_config, text):
    report = _segment(text, reading_config)
    previous_end = 0
    for unit in report.units:
        assert 0 <= previous_end <= unit.start < unit.end <= len(report.text)
        assert report.text[unit.start : unit.end] == unit.text
        assert unit.text.strip() == unit.text and unit.text
        previous_end = unit.end


@settings(max_examples=200, deadline=None)
@given(texts)
def test_segmenting_twice_gives_the_same_result(reading_config, text):
    assert _segment(text, reading_config).units == _segment(text, reading_config).units


@settings(max_examples=200, deadline=None)
@given(texts)
def test_origin_map_points_at_the_same_characters(reading_config, text):
    normalized = normalize_text(text, reading_config)
    assert len(normalized.origin) == len(normalized.text)
    assert normalized.origin == sorted(normalized.origin)
    for char, index in zip(normalized.text, normalized.origin, strict=True):
        assert char == text[index] or char in "，：；！？（）\n " or text[index] in "\r\u3000"


def _units(path, config):
    return load_report(path, config).units


def test_every_seed_segments_into_the_expected_number_of_units(reading_config, seed_paths):
    counts = {path.name[:3]: len(_units(path, reading_config)) for path in seed_paths}
    assert counts == {"000": 91, "001": 91, "002": 142, "003": 78, "004": 764}


def test_broken_number_is_joined_into_one_sentence(reading_config, seed_paths):
    texts = [unit.text for unit in _units(seed_paths[1], reading_config)]
    assert "电子信息产业产值10065.7亿元，同比增长19.8%，成为成都首个万亿产业。" in texts
    assert not any(text.endswith("10065.7") for text in texts)


def test_heading_running_into_body_ends_at_its_first_full_stop(reading_config, seed_paths):
    units = _units(seed_paths[1], reading_config)
    heading = next(unit for unit in units if unit.text.startswith("（一）科技创新顶层设计"))
    assert heading.kind == "heading" and heading.text == "（一）科技创新顶层设计进一步完善。"
    following = units[heading.index + 1]
    assert following.kind == "body" and following.text.startswith("成功召开全市科技创新大会")
    assert following.section_path == ("一、2020年科技创新工作情况", "（一）科技创新顶层设计进一步完善")


def test_title_line_is_not_joined_to_the_first_paragraph(reading_config, seed_paths):
    units = _units(seed_paths[0], reading_config)
    assert units[0].text == "广州市科学技术局2020年工作总结及下一阶段工作计划"
    assert units[1].text.startswith("“十三五”期间")


def test_furniture_is_kept_and_marked(reading_config, seed_paths):
    last_001 = _units(seed_paths[1], reading_config)[-1]
    last_003 = _units(seed_paths[3], reading_config)[-1]
    assert last_001.kind == "furniture" and last_001.text.startswith("本文转载自")
    assert last_003.kind == "furniture" and last_003.text == "评论 （0）"


def test_dash_items_and_table_cells_in_the_plan(reading_config, seed_paths):
    units = _units(seed_paths[4], reading_config)
    dash = next(unit for unit in units if unit.text.startswith("——坚持创新能力"))
    assert dash.kind == "heading" and dash.text == "——坚持创新能力与制度优化同发展。"
    assert dash.section_path[-2:] == ("（二）基本原则", "——坚持创新能力与制度优化同发展")
    cell = next(unit for unit in units if unit.text == "5.71")
    assert cell.kind == "body" and cell.section_path[:2] == ("二、总体要求", "（四）发展目标")


def test_closing_quote_stays_with_its_sentence(reading_config):
    report = report_from_text("他说：“要加强基础研究。”随后部署工作；（详见附件。）完成。", reading_config)
    assert [unit.text for unit in report.units] == [
        "他说：“要加强基础研究。”",
        "随后部署工作；",
        "（详见附件。）",
        "完成。",
    ]


def test_half_and_full_width_punctuation_normalise_alike(reading_config):
    half = report_from_text("(一)加强基础研究,建设实验室;引进人才!", reading_config)
    full = report_from_text("（一）加强基础研究，建设实验室；引进人才！", reading_config)
    assert [u.text for u in half.units] == [u.text for u in full.units]
    assert half.units[0].kind == "heading"
    assert report_from_text("投入1,000亿元，时间10:30。", reading_config).units[0].text == "投入1,000亿元，时间10:30。"


def test_ids_are_stable_across_reads(reading_config, seed_paths):
    first = [(u.unit_id, u.start, u.text) for u in _units(seed_paths[2], reading_config)]
    again = [(u.unit_id, u.start, u.text) for u in _units(seed_paths[2], reading_config)]
    assert first == again and len({uid for uid, _, _ in first}) == len(first)


def test_section_tree_holds_every_unit_once(reading_config, seed_paths):
    for path in seed_paths:
        report = load_report(path, reading_config)
        assert [u.unit_id for u in report.root.all_units()] == [u.unit_id for u in report.units]


def test_original_span_maps_back_to_the_raw_file(reading_config, seed_paths):
    report = load_report(seed_paths[1], reading_config)
    raw = seed_paths[1].read_text(encoding="utf-8")
    unit = next(u for u in report.units if u.text.startswith("电子信息产业产值"))
    start, end = report.normalized.original_span(unit.start, unit.end)
    assert raw[start:end].replace("\n", "") == "电子信息产业产值10065.7亿元,同比增长19.8%,成为成都首个万亿产业。"


@pytest.mark.parametrize("text", ["", "   \n  ", "Hello world, no Chinese here at all."])
def test_text_without_chinese_is_refused(reading_config, text):
    from data.errors import ReportError

    with pytest.raises(ReportError):
        report_from_text(text, reading_config)
