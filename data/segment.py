"""Cut normalised report text into units and a tree of sections, following the annotation guide.

A unit is a sentence or clause (split after 。！？；!?;) or a heading line; each line of the normalised
text is a paragraph, because broken lines were joined during normalisation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from data.normalize import NormalizedText
from data.reading_config import ReadingConfig

UnitKind = Literal["heading", "body", "furniture"]


@dataclass(frozen=True)
class Unit:
    """One sentence, clause or heading, with offsets into the normalised report text."""

    unit_id: str
    report_id: str
    index: int
    start: int
    end: int
    text: str
    kind: UnitKind
    section_path: tuple[str, ...]


@dataclass
class Section:
    """A heading and what stands under it; the root section (no heading) holds the whole report."""

    title: str
    level: int
    path: tuple[str, ...]
    heading: Unit | None = None
    units: list[Unit] = field(default_factory=list)
    children: list[Section] = field(default_factory=list)

    def walk(self) -> Iterator[Section]:
        """This section and every section below it, in document order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def all_units(self) -> list[Unit]:
        """Every unit of this section and its subsections, in document order."""
        units = list(self.units)
        for child in self.children:
            units.extend(child.all_units())
        return sorted(units, key=lambda unit: unit.index)


@dataclass
class Report:
    """A segmented report: normalised text, its units in order, and the section tree."""

    report_id: str
    source: str
    normalized: NormalizedText
    units: list[Unit]
    root: Section

    @property
    def text(self) -> str:
        return self.normalized.text

    def sections(self) -> list[Section]:
        """Every headed section (the root excluded), in document order."""
        return [section for section in self.root.walk() if section.heading is not None]

    def unit_row(self, unit: Unit, **columns: Any) -> dict[str, Any]:
        """A unit as an output row: where it stands, its text, any further ``columns`` (a classifier's labels), then
        whether OCR read it; `segment`, `classify` and batch scoring all write these rows."""
        return {
            "report_id": unit.report_id,
            "unit_id": unit.unit_id,
            "kind": unit.kind,
            "section_path": list(unit.section_path),
            "start": unit.start,
            "end": unit.end,
            "text": unit.text,
            **columns,
            "ocr": self.normalized.read_by_ocr(unit.start, unit.end),
        }


def _sentence_spans(text: str, start: int, end: int, config: ReadingConfig) -> Iterator[tuple[int, int]]:
    """Sentence spans of text[start:end], whitespace trimmed; closers stay with the sentence they close."""
    i = start
    while i < end:
        while i < end and text[i].isspace():
            i += 1
        if i >= end:
            return
        j = i
        while j < end and text[j] not in config.sentence_end:
            j += 1
        # absorb a run of enders and closers: "。”", "！？", "。）"
        while j < end and (text[j] in config.sentence_end or text[j] in config.closers):
            j += 1
        stop = j
        while stop > i and text[stop - 1].isspace():
            stop -= 1
        yield i, stop
        i = j


def _line_units(
    text: str, start: int, end: int, config: ReadingConfig, level: int | None
) -> Iterator[tuple[int, int, bool]]:
    """Units of one line as (start, end, is_heading); a heading runs to its first 。 or ； (guide, "Unit")."""
    while start < end and text[start].isspace():
        start += 1
    if start >= end:
        return
    if level is not None:
        stop = next((i + 1 for i in range(start, end) if text[i] in config.heading_end), end)
        while stop < end and text[stop] in config.closers:
            stop += 1
        head_end = stop
        while head_end > start and text[head_end - 1].isspace():
            head_end -= 1
        yield start, head_end, True
        start = stop
    for span in _sentence_spans(text, start, end, config):
        yield (*span, False)


class _HeadingLevels:
    """Section levels of a report's heading lines, which depend on what came before in the report.

    Unnumbered titles ("2026年重点工作") are chapters only in reports that do not number their chapters; after an
    appendix line ("附件1") every heading nests one level deeper, so the appendix's own numbered list
    ("一、提高低保…") does not open new top-level chapters.
    """

    def __init__(self, lines: list[str], config: ReadingConfig) -> None:
        self.config = config
        self.numbered = any(config.heading_level(line.strip()) == 1 for line in lines)
        self.shift = 0

    def level(self, line: str) -> int | None:
        line = line.strip()
        config = self.config
        if config.appendix_regex.match(line):
            self.shift = 1
            return config.appendix.level
        level = config.heading_level(line)
        if level is None and config.title_regex.match(line):
            level = config.titles.level_under_numbered if self.numbered else config.titles.level
        return None if level is None else level + self.shift


def _title(heading: str) -> str:
    return heading.rstrip("。").strip()


def segment_report(normalized: NormalizedText, report_id: str, source: str, config: ReadingConfig) -> Report:
    """Segment normalised text into units and sections; ids are ``<report_id>-<index>`` so re-reads match."""
    text = normalized.text
    root = Section(title="", level=0, path=())
    stack = [root]
    units: list[Unit] = []
    pos = 0
    lines = text.split("\n")
    levels = _HeadingLevels(lines, config)
    for line in lines:
        level = None if config.is_furniture(line.strip()) else levels.level(line)
        rule = config.heading_rule(line.strip())
        line_scoped = level is not None and rule is not None and rule.scope == "line"
        for start, end, is_heading in _line_units(text, pos, pos + len(line), config, level):
            unit_text = text[start:end]
            kind: UnitKind = "body"
            if is_heading and level is not None:
                while stack[-1].level >= level:
                    stack.pop()
                section = Section(title=_title(unit_text), level=level, path=(*stack[-1].path, _title(unit_text)))
                stack[-1].children.append(section)
                stack.append(section)
                kind = "heading"
            elif config.is_furniture(unit_text):
                kind = "furniture"
            unit = Unit(
                unit_id=f"{report_id}-{len(units):04d}",
                report_id=report_id,
                index=len(units),
                start=start,
                end=end,
                text=unit_text,
                kind=kind,
                section_path=stack[-1].path,
            )
            if is_heading:
                stack[-1].heading = unit
            stack[-1].units.append(unit)
            units.append(unit)
        if line_scoped:  # a run-in list item ("——这是…的五年。…") heads its own line only
            stack.pop()
        pos += len(line) + 1
    return Report(report_id=report_id, source=source, normalized=normalized, units=units, root=root)
