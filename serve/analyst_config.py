"""The typed form of ``configs/analyst.yaml``: how the stage-profile chart and the HTML report page look."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from data.configuration import config_path, load_config
from data.errors import ConfigError


@dataclass(frozen=True)
class ChartConfig:
    max_bars: int
    title_chars: int
    width: float
    bar_height: float
    dpi: int
    min_share_label: float

    def __post_init__(self) -> None:
        checks = {
            "chart.max_bars": self.max_bars >= 1,
            "chart.title_chars": self.title_chars >= 8,
            "chart.width": self.width > 0,
            "chart.bar_height": self.bar_height > 0,
            "chart.dpi": self.dpi >= 50,
            "chart.min_share_label": 0 <= self.min_share_label <= 1,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"config key '{key}' is out of range (configs/analyst.yaml gives the range)")


@dataclass(frozen=True)
class PageConfig:
    tint: float
    text_color: str
    toc_title_chars: int
    screenshot_width: int
    screenshot_height: int

    def __post_init__(self) -> None:
        if not 0 <= self.tint <= 1:
            raise ConfigError(f"config key 'page.tint' must be in [0, 1], got {self.tint}")
        if not re.fullmatch(r"#[0-9A-Fa-f]{6}", self.text_color):
            raise ConfigError(f"config key 'page.text_color' must be a #RRGGBB colour, got {self.text_color!r}")
        if self.toc_title_chars < 8:
            raise ConfigError(f"config key 'page.toc_title_chars' must be >= 8, got {self.toc_title_chars}")
        for key, value in (("page.screenshot_width", self.screenshot_width),
                           ("page.screenshot_height", self.screenshot_height)):
            if value < 200:
                raise ConfigError(f"config key '{key}' must be >= 200 pixels, got {value}")


@dataclass(frozen=True)
class AnalystConfig:
    chart: ChartConfig
    page: PageConfig


def load_analyst_config(path: str | Path | None = None, overrides: list[str] | None = None) -> AnalystConfig:
    """Load the analyst-view config, by default the shipped ``configs/analyst.yaml``."""
    return load_config(AnalystConfig, path or config_path("analyst"), overrides)
