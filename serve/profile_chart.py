"""Stage-profile charts: stacked bars of stage shares per section, one panel per report, reports side by side.

Chinese labels are drawn with the Noto Sans CJK font that chainstage installs (models/fonts.py). Should it be
missing, every label falls back to ASCII (stage keys, numbered sections) so that the chart never shows tofu boxes.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from data.errors import ChainstageError
from data.labels import LabelSet
from models.fonts import cjk_font_properties
from serve.analyst_config import ChartConfig
from serve.section_labels import indented_label

logger = logging.getLogger(__name__)

ChartFormat = Literal["png", "svg"]

# Fixed chart words, (Chinese, ASCII fallback).
WORDS = {
    "overall": ("全文", "overall"),
    "preface": ("篇首", "preface"),
    "by_section": ("· 按章节", "- by section"),
    "compared": ("各报告全文对比", "reports compared (whole text)"),
    "x_label": ("正文句子占比（右侧数字为句数）", "share of body units (right: number of units)"),
}


@dataclass(frozen=True)
class Bar:
    """One stacked bar: a whole report or one section, its number of body units and its stage shares."""

    path: tuple[str, ...] | None  # None for the whole report
    units: int
    shares: dict[str, float]


def relative_luminance(color: str) -> float:
    """WCAG relative luminance of a #RRGGBB colour."""
    channels = [int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(foreground: str, background: str) -> float:
    """WCAG contrast ratio between two #RRGGBB colours (1 to 21; AA body text needs 4.5)."""
    high, low = sorted((relative_luminance(foreground), relative_luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def readable_on(background: str) -> str:
    """Black or white, whichever contrasts more with ``background``."""
    return max(("#000000", "#FFFFFF"), key=lambda text: contrast_ratio(text, background))


def profile_rows(profile: dict[str, Any]) -> list[dict[str, Any]]:
    """A stage profile as rows: the whole report first (scope "report"), then each section (scope "section")."""
    rows = [{"report_id": profile["report_id"], "scope": "report", "section_path": [], "units": profile["units"],
             **profile["overall"]}]
    rows += [{"report_id": profile["report_id"], "scope": "section", "section_path": section["section_path"],
              "units": section["units"], **section["shares"]} for section in profile["sections"]]
    return rows


def section_bars(profile: dict[str, Any], depth: int) -> list[Bar]:
    """Sections merged up to ``depth`` heading levels, in document order, shares recomputed from unit counts."""
    counts: dict[tuple[str, ...], dict[str, float]] = {}
    units: dict[tuple[str, ...], int] = {}
    for section in profile["sections"]:
        key = tuple(section["section_path"][:depth])
        merged = counts.setdefault(key, dict.fromkeys(section["shares"], 0.0))
        for name, share in section["shares"].items():
            merged[name] += share * section["units"]
        units[key] = units.get(key, 0) + section["units"]
    return [Bar(path, units[path], {name: count / units[path] for name, count in counts[path].items()})
            for path in counts if units[path]]


def with_parent_rows(bars: Sequence[Bar]) -> list[Bar]:
    """Insert an empty row for each parent heading that has no bar of its own, so the chart shows the tree."""
    rows: list[Bar] = []
    seen: set[tuple[str, ...]] = set()
    for bar in bars:
        for depth in range(1, len(bar.path or ())):
            parent = (bar.path or ())[:depth]
            if parent not in seen:
                rows.append(Bar(parent, 0, {}))
                seen.add(parent)
        rows.append(bar)
        seen.add(bar.path or ())
    return rows


def chart_depth(profile: dict[str, Any], max_bars: int) -> int:
    """The deepest heading level whose sections fit in ``max_bars`` bars (at least the top level)."""
    deepest = max((len(section["section_path"]) for section in profile["sections"]), default=1)
    fitting = [depth for depth in range(1, deepest + 1) if len(section_bars(profile, depth)) <= max_bars]
    return max(fitting, default=1)


def outline_numbers(paths: Sequence[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """Outline numbers (1, 1.2, 1.2.1) of section paths in document order: ASCII names when titles cannot be
    drawn."""
    numbers: dict[tuple[str, ...], str] = {(): ""}
    children: dict[tuple[str, ...], int] = {}
    for path in paths:
        for depth in range(1, len(path) + 1):
            prefix = path[:depth]
            if prefix not in numbers:
                children[prefix[:-1]] = children.get(prefix[:-1], 0) + 1
                numbers[prefix] = f"{numbers[prefix[:-1]]}.{children[prefix[:-1]]}".lstrip(".")
    return numbers


class _Namer:
    """The chart's visible words: Chinese with a CJK font, ASCII keys and numbers without one."""

    def __init__(self, labels: LabelSet, chinese: bool, title_chars: int) -> None:
        self.labels = labels
        self.chinese = chinese
        self.title_chars = title_chars

    def word(self, key: str) -> str:
        return WORDS[key][0 if self.chinese else 1]

    def stage(self, name: str) -> str:
        return name if self.chinese else self.labels.by_name(name).key

    def report(self, report_id: str, index: int) -> str:
        return report_id if self.chinese or report_id.isascii() else f"report {index + 1}"

    def bars(self, bars: Sequence[Bar]) -> list[str]:
        """Tick labels: section headings, shortened and indented by depth, or outline numbers such as "S2.1"
        without a CJK font."""
        numbers = outline_numbers([bar.path for bar in bars if bar.path])
        ticks = []
        for bar in bars:
            if bar.path is None:
                ticks.append(self.word("overall"))
            elif not bar.path:
                ticks.append(self.word("preface"))
            else:
                ticks.append(indented_label(bar.path, self.title_chars) if self.chinese else f"S{numbers[bar.path]}")
        return ticks


def _stacked(ax: Any, bars: Sequence[Bar], ticks: Sequence[str], names: Sequence[str], namer: _Namer,
             labels: LabelSet, config: ChartConfig) -> None:
    """Horizontal stacked bars, top to bottom in document order, with shares written in wide segments."""
    from matplotlib.ticker import PercentFormatter

    positions = list(range(len(bars)))
    lefts = [0.0] * len(bars)
    for name in names:
        color = labels.by_name(name).color
        widths = [bar.shares.get(name, 0.0) for bar in bars]
        ax.barh(positions, widths, left=lefts, height=0.78, color=color, edgecolor="white", linewidth=0.6,
                label=namer.stage(name))
        for y, (left, width) in enumerate(zip(lefts, widths, strict=True)):
            if width >= config.min_share_label:
                ax.text(left + width / 2, y, f"{width:.0%}", ha="center", va="center", fontsize=7,
                        color=readable_on(color))
        lefts = [left + width for left, width in zip(lefts, widths, strict=True)]
    for y, bar in enumerate(bars):
        if bar.units:
            ax.text(1.01, y, str(bar.units), ha="left", va="center", fontsize=7, color="#444444", clip_on=False)
    ax.set_yticks(positions, ticks, fontsize=8, color="#333333")
    for tick, bar in zip(ax.get_yticklabels(), bars, strict=True):
        if bar.path is None or not bar.units:  # the whole report and bar-less parent headings stand out
            tick.set_fontsize(9)  # by size, not weight: CJK fonts rarely ship a bold face
            tick.set_color("#000000")
    _flush_left(ax)
    ax.set_ylim(len(bars) - 0.5, -0.5)  # first bar on top, as in the report
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.tick_params(axis="x", labelsize=7)
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _flush_left(ax: Any) -> None:
    """Row labels flush left, so that the indentation of deeper sections shows the outline (right-aligned, it
    would not); the tick pad moves them left of the axis by the widest label, measured in the font drawn."""
    from matplotlib.textpath import text_to_path

    labels = ax.get_yticklabels()
    widest = max(text_to_path.get_text_width_height_descent(label.get_text(), label.get_fontproperties(), False)[0]
                 for label in labels)
    ax.tick_params(axis="y", pad=widest + 4)  # points
    for label in labels:
        label.set_horizontalalignment("left")


def draw_profile_chart(profiles: Sequence[dict[str, Any]], labels: LabelSet, config: ChartConfig) -> Any:
    """A matplotlib Figure: per report, the whole text then each section; with several reports, a comparison
    panel of their whole-text profiles on top. Call inside ``chart_style()`` so the CJK font applies."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if not profiles:
        raise ChainstageError("no stage profile to draw: every report failed to read")
    namer = _Namer(labels, chinese=cjk_font_properties() is not None, title_chars=config.title_chars)
    names = [name for name in labels.names if name in profiles[0]["overall"]]
    panels = [[Bar(None, profile["units"], profile["overall"]),
               *with_parent_rows(section_bars(profile, chart_depth(profile, config.max_bars)))]
              for profile in profiles]
    # heights in inches: bars, plus room for a title and the x axis
    panel_height = max(len(bars) for bars in panels) * config.bar_height + 1.1
    compare_height = len(profiles) * config.bar_height + 1.1 if len(profiles) > 1 else 0.0
    figure = Figure(figsize=(config.width * len(profiles), panel_height + compare_height + 0.5),
                    layout="constrained")
    if len(profiles) > 1:
        grid = figure.add_gridspec(2, len(profiles), height_ratios=[compare_height, panel_height])
        compare = figure.add_subplot(grid[0, :])
        overall = [Bar(None, profile["units"], profile["overall"]) for profile in profiles]
        ticks = [namer.report(profile["report_id"], i) for i, profile in enumerate(profiles)]
        _stacked(compare, overall, ticks, names, namer, labels, config)
        compare.set_title(namer.word("compared"), fontsize=10, loc="left")
        axes = [figure.add_subplot(grid[1, i]) for i in range(len(profiles))]
    else:
        axes = [figure.add_subplot(1, 1, 1)]
    for index, (ax, profile, bars) in enumerate(zip(axes, profiles, panels, strict=True)):
        _stacked(ax, bars, namer.bars(bars), names, namer, labels, config)
        ax.set_title(f"{namer.report(profile['report_id'], index)} {namer.word('by_section')}", fontsize=10,
                     loc="left")
        ax.set_xlabel(namer.word("x_label"), fontsize=8)
    handles = [Patch(facecolor=labels.by_name(name).color, label=namer.stage(name)) for name in names]
    figure.legend(handles=handles, loc="outside upper center", ncol=len(handles), frameon=False, fontsize=9)
    return figure


def chart_style() -> dict[str, Any]:
    """matplotlib settings for the charts: the CJK font first (DejaVu for anything it lacks), text kept as
    paths in SVG so the page needs no font, and fixed SVG ids so the same input gives the same file."""
    style: dict[str, Any] = {"svg.fonttype": "path", "svg.hashsalt": "chainstage", "axes.unicode_minus": False}
    font = cjk_font_properties()
    if font is None:
        logger.warning("no Chinese font (reinstall chainstage: its dependency noto-cjk-sans-otc carries one): "
                       "chart labels use ASCII keys")
    else:
        style["font.family"] = [font.get_name(), "DejaVu Sans"]
    return style


def render_profile_chart(profiles: Sequence[dict[str, Any]], labels: LabelSet, config: ChartConfig,
                         fmt: ChartFormat) -> bytes:
    """The chart as PNG or SVG bytes."""
    import matplotlib

    buffer = io.BytesIO()
    with matplotlib.rc_context(chart_style()):
        figure = draw_profile_chart(profiles, labels, config)
        # no creation date in the file, so the same input gives the same bytes
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        figure.savefig(buffer, format=fmt, dpi=config.dpi, metadata=metadata)
    return buffer.getvalue()


def save_profile_chart(profiles: Sequence[dict[str, Any]], path: Path, labels: LabelSet,
                       config: ChartConfig) -> Path:
    """Write the chart to ``path``; its suffix (.png or .svg) picks the format."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise ChainstageError(f"{path}: the chart file must end in .png or .svg")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_profile_chart(profiles, labels, config, fmt))  # type: ignore[arg-type]
    return path
