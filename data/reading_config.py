"""The typed form of ``configs/reading.yaml``: how reports are read, normalised and segmented."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from data.configuration import config_path, load_config


@dataclass(frozen=True)
class HeadingRule:
    pattern: str
    level: int


@dataclass(frozen=True)
class ReadingConfig:
    max_bytes: int
    min_cjk_ratio: float
    min_cjk_chars: int
    binary_control_ratio: float
    join_min_chars: int
    join_after: str
    pdf_wrap_ratio: float
    sentence_end: str
    closers: str
    line_end: str
    headings: list[HeadingRule]
    furniture: list[str]

    @cached_property
    def heading_regexes(self) -> list[tuple[re.Pattern[str], int]]:
        return [(re.compile(rule.pattern), rule.level) for rule in self.headings]

    @cached_property
    def furniture_regexes(self) -> list[re.Pattern[str]]:
        return [re.compile(pattern) for pattern in self.furniture]

    def heading_level(self, line: str) -> int | None:
        """Level of the heading that starts ``line`` (already stripped), or None for body text."""
        for regex, level in self.heading_regexes:
            if regex.match(line):
                return level
        return None


def load_reading_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ReadingConfig:
    """Load the reading config, by default the shipped ``configs/reading.yaml``."""
    return load_config(ReadingConfig, path or config_path("reading"), overrides)
