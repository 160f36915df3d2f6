"""The typed form of ``configs/reading.yaml``: how reports are read, normalised and segmented."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from data.configuration import config_path, load_config
from data.errors import ConfigError


@dataclass(frozen=True)
class HeadingRule:
    pattern: str
    level: int
    scope: Literal["section", "line"]

    @property
    def numbered(self) -> bool:
        """A rule for a numbering that starts a line, not one matched against a whole line's shape (ends in $)."""
        return not self.pattern.endswith("$")


@dataclass(frozen=True)
class TitleRule:
    """Unnumbered chapter titles: their level depends on whether the report numbers its chapters."""

    pattern: str
    level: int
    level_under_numbered: int


@dataclass(frozen=True)
class AppendixRule:
    pattern: str
    level: int


@dataclass(frozen=True)
class OcrConfig:
    """How scanned PDF pages and page images are read by OCR (the optional ``chainstage[ocr]`` extra)."""

    dpi: int
    min_confidence: float
    threads: int
    angle_classifier: bool

    def __post_init__(self) -> None:
        if not 72 <= self.dpi <= 600:
            raise ConfigError(f"config key 'ocr.dpi' must be between 72 and 600, got {self.dpi}")
        if not 0 <= self.min_confidence <= 1:
            raise ConfigError(f"config key 'ocr.min_confidence' must be between 0 and 1, got {self.min_confidence}")
        if self.threads < 1:
            raise ConfigError(f"config key 'ocr.threads' must be >= 1, got {self.threads}")


@dataclass(frozen=True)
class ReadingConfig:
    max_bytes: int
    min_cjk_ratio: float
    min_cjk_chars: int
    binary_control_ratio: float
    join_min_chars: int
    join_after: str
    pdf_wrap_ratio: float
    ocr: OcrConfig
    sentence_end: str
    heading_end: str
    closers: str
    line_end: str
    join_lines: list[str]
    headings: list[HeadingRule]
    titles: TitleRule
    appendix: AppendixRule
    furniture: list[str]

    @cached_property
    def heading_regexes(self) -> list[tuple[re.Pattern[str], HeadingRule]]:
        return [(re.compile(rule.pattern), rule) for rule in self.headings]

    @cached_property
    def furniture_regexes(self) -> list[re.Pattern[str]]:
        return [re.compile(pattern) for pattern in self.furniture]

    @cached_property
    def join_regexes(self) -> list[re.Pattern[str]]:
        return [re.compile(pattern) for pattern in self.join_lines]

    @cached_property
    def title_regex(self) -> re.Pattern[str]:
        return re.compile(self.titles.pattern)

    @cached_property
    def appendix_regex(self) -> re.Pattern[str]:
        return re.compile(self.appendix.pattern)

    def heading_rule(self, line: str) -> HeadingRule | None:
        """The numbered-heading rule that ``line`` (already stripped) starts with, or None for body text."""
        return next((rule for regex, rule in self.heading_regexes if regex.match(line)), None)

    def heading_level(self, line: str) -> int | None:
        rule = self.heading_rule(line)
        return None if rule is None else rule.level

    def is_furniture(self, text: str) -> bool:
        return any(regex.search(text) for regex in self.furniture_regexes)

    def stands_alone(self, line: str) -> bool:
        """A line never joined to a neighbour: a heading, a title, an appendix line or page furniture."""
        return (
            self.heading_level(line) is not None
            or bool(self.title_regex.match(line))
            or bool(self.appendix_regex.match(line))
            or self.is_furniture(line)
        )


def load_reading_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ReadingConfig:
    """Load the reading config, by default the shipped ``configs/reading.yaml``."""
    return load_config(ReadingConfig, path or config_path("reading"), overrides)
