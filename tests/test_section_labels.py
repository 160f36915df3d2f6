"""Short section labels: hypothesis invariants (width, prefix, numbering kept) and hand-checked headings of the
provincial work reports (issue 17)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from serve.section_labels import ELLIPSIS, INDENT, display_width, indented_label, short_title

NUMBERINGS = ["一、", "（十四）", "12.", "一是", "附件2", "第三章"]
# Chinese text with the punctuation, digits and spaces that headings mix in
HEADING_TEXT = st.text(st.sampled_from([*"科技创新产业发展推动建设，；：、“”《》2025年ABC .", INDENT]), max_size=120)


@given(HEADING_TEXT, st.integers(min_value=8, max_value=60))
def test_a_label_fits_its_width_and_starts_the_heading(title, width):
    label = short_title(title, width)
    whole = " ".join(title.split())
    assert display_width(label) <= width
    if display_width(whole) <= width:
        assert label == whole
    else:
        assert label.endswith(ELLIPSIS) and whole.startswith(label[:-1])


@given(st.sampled_from(NUMBERINGS), HEADING_TEXT, st.integers(min_value=8, max_value=60))
def test_the_numbering_always_stays(numbering, rest, width):
    assert short_title(numbering + "推进" + rest, width).startswith(numbering)


def test_headings_of_the_provincial_reports():
    cases = [
        # digits count half: this 19-character heading fits 18 Chinese characters whole
        ("一、2025年和“十四五”时期工作回顾", "一、2025年和“十四五”时期工作回顾"),
        # cut after a whole clause rather than inside the next one
        ("（四）推动供需高水平动态适配，在建设强大国内市场中努力扩大有潜能的消费", "（四）推动供需高水平动态适配…"),
        ("（三）聚焦因地制宜发展新质生产力，推进科技创新和产业创新深度融合", "（三）聚焦因地制宜发展新质生产力…"),
        # no clause ends in the second half of the width: cut where the width ends
        ("（十二）用心用情用力办好群众身边大大小小的事，更好满足人民群众日益增长的美好生活需要",
         "（十二）用心用情用力办好群众身边大…"),
    ]
    for heading, label in cases:
        assert short_title(heading, 18) == label
    # a glossary entry (名词解释) of Sichuan's report, which runs to 73 characters
    entry = "3.“自审自发”：2024年12月22日，国务院办公厅印发《关于优化完善地方政府专项债券管理机制的意见》"
    assert short_title(entry, 28) == "3.“自审自发”：2024年12月22日…"


def test_deep_sections_are_indented_by_level():
    path = ("二、“十五五”时期的主要目标和重点任务", "主要目标", "一是聚焦经济建设这一中心工作")
    assert indented_label(path[:1], 18) == "二、“十五五”时期的主要目标和重点…"
    assert indented_label(path, 18) == INDENT * 2 + "一是聚焦经济建设这一中心工作"
