"""Find a font that draws Chinese, so charts never show tofu boxes.

matplotlib ships no CJK font. We look for a well-known CJK family among the fonts installed on the machine
(Debian's fonts-wqy-microhei, Noto CJK, Source Han, or the usual Windows/macOS ones); callers fall back to the
labels' ASCII keys when none is found.
"""

from __future__ import annotations

from functools import lru_cache

CJK_FAMILIES = (
    "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC",
    "Source Han Sans CN", "Microsoft YaHei", "SimHei", "PingFang SC", "Heiti SC", "AR PL UMing CN",
)


@lru_cache(maxsize=1)
def cjk_font_path() -> str | None:
    """Path of an installed font that covers Chinese, or None."""
    from matplotlib import font_manager

    for font in font_manager.fontManager.ttflist:
        if font.name in CJK_FAMILIES:
            return font.fname
    return None


def cjk_font_properties():  # -> matplotlib.font_manager.FontProperties | None
    """FontProperties for Chinese text, or None when the machine has no CJK font."""
    from matplotlib import font_manager

    path = cjk_font_path()
    return font_manager.FontProperties(fname=path) if path else None
