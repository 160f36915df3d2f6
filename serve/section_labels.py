"""Short section labels for the chart's rows and the page's table of contents.

Full-length work reports have headings of up to 50 characters and glossary entries (名词解释) of up to 180, which
as labels push the bars off the chart and fill the table of contents. A label is the heading itself, cut with …
to a width measured in Chinese characters, so that the numbering at its start (一、 （三） 1. 一是 附件2) always
stays and tells the sections apart.
"""

from __future__ import annotations

import unicodedata

# where a heading may be cut without splitting a phrase: after a clause ("（四）推动供需高水平动态适配，在…")
# or before a glossary definition ("2.“两新”：是指…"); the enumeration comma 、 joins a list and is no such place
CLAUSE_BREAKS = "，；：,;:"
ELLIPSIS = "…"
INDENT = "\u3000"  # an ideographic space: exactly one Chinese character wide in a CJK font


def display_width(text: str) -> float:
    """Width in Chinese characters: a Latin letter, digit or space counts half, as a CJK font draws it."""
    return sum(1.0 if unicodedata.east_asian_width(char) in "WFA" else 0.5 for char in text)


def short_title(title: str, width: float) -> str:
    """``title`` in at most ``width`` Chinese characters, … included: cut at the last clause break when that keeps
    at least half the width (a whole phrase reads better than a longer fragment), else where the width ends."""
    title = " ".join(title.split())  # a heading joined from broken lines may hold runs of spaces
    if display_width(title) <= width:
        return title
    kept, used = 0, display_width(ELLIPSIS)
    for char in title:
        used += display_width(char)
        if used > width:
            break
        kept += 1
    # a break right after the kept text counts too: the cut then drops only the break and what follows it
    cut = max(title.rfind(char, 0, kept + 1) for char in CLAUSE_BREAKS)
    if cut > 0 and display_width(title[:cut]) >= width / 2:
        kept = cut
    return title[:kept].rstrip(CLAUSE_BREAKS + "、 ") + ELLIPSIS


def indented_label(path: tuple[str, ...], width: float) -> str:
    """A section's row label: its own heading, shortened, indented one character per level below the top, so
    that a deep section reads as part of the outline above it rather than as a chapter of its own."""
    return INDENT * (len(path) - 1) + short_title(path[-1], width)
