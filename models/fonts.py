"""The font that draws Chinese in our charts: Noto Sans CJK SC, which chainstage installs as a Python package.

matplotlib ships no CJK font, and the fonts of the machine are no answer: matplotlib lists them from a cache
written the first time it is imported, so a font installed later (apt's fonts-wqy-microhei after `make run`)
stays invisible and charts fell back to ASCII. The noto-cjk-sans-otc package carries the font file, and we
register it by path in every process, so it is found whatever the cache says, on any machine, without apt.
It lives in models/ because that is the lowest layer both its users may import (training/metrics.py draws the
confusion matrix, serve/profile_chart.py the stage profile); data/ is for reading reports, not drawing them.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.font_manager import FontProperties

logger = logging.getLogger(__name__)

# The collection holds Japanese, Korean, Simplified and Traditional Chinese faces of the same design; the SC
# face draws the mainland glyph forms our reports use.
CJK_FAMILY = "Noto Sans CJK SC"


def cjk_font_path() -> Path:
    """The Noto Sans CJK collection (.ttc) that the noto-cjk-sans-otc package installs."""
    from noto_cjk_sans_otc import FONT_PATH

    return Path(str(FONT_PATH))


@lru_cache(maxsize=1)
def _font_registered() -> bool:
    """Add the font to matplotlib's font list, once per process; False when the file is missing (a broken install)."""
    from matplotlib import font_manager

    try:
        font_manager.fontManager.addfont(cjk_font_path())
    except (ImportError, OSError) as err:
        logger.warning("cannot load the Chinese font (%s); reinstall chainstage with its dependencies", err)
        return False
    return True


def cjk_font_properties() -> FontProperties | None:
    """FontProperties for Chinese text (a new one per call: callers may resize it), or None without the font."""
    from matplotlib import font_manager

    return font_manager.FontProperties(family=CJK_FAMILY) if _font_registered() else None
