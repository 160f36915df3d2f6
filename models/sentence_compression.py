"""Light compression of chosen units: named rules that only ever delete text, and the finishing punctuation.

Each rule is named after its key under ``compression`` in ``configs/summarizer.yaml`` and is a pure function of
its text, so tests check each by hand and a hypothesis test checks that compression only deletes. The sets of
punctuation they recognise come from the config; the two marks they write are below.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.summarizer_config import CompressionSection

FULL_STOP = "。"  # what ends a sentence the summarizer finished, trimmed or joined
CUT_MARK = "…"  # what marks a unit cut mid-clause, the last resort


def drop_enumerator(text: str, pattern: str) -> str:
    """Rule `enumerators`: 一是加强… -> 加强…; the enumerator orders a list, it states no fact."""
    stripped = re.sub(pattern, "", text, count=1)
    return stripped if stripped.strip() else text


def drop_filler_opening(text: str, openings: Sequence[str]) -> str:
    """Rule `filler_openings`: 同时，加强… -> 加强…; a connective that links to a sentence left out."""
    changed = True
    while changed:
        changed = False
        for opening in openings:
            if text.startswith(opening) and text[len(opening):].strip():
                text = text[len(opening):]
                changed = True
    return text


def compress_unit(text: str, rules: CompressionSection) -> str:
    """Apply the deleting rules in a fixed order; the result is always a subsequence of ``text``."""
    if rules.enumerators:
        text = drop_enumerator(text, rules.enumerator_pattern)
    return drop_filler_opening(text, rules.filler_openings)


def _bracket_step(char: str) -> int:
    """+1 for an opening quote or bracket, -1 for a closing one, 0 otherwise, by Unicode class (Ps/Pi open,
    Pe/Pf close): every pair counts (“” 《》 （） ［］ 『』 〈〉), with no list to keep in step with the reading
    config's closers; the ASCII quotes " and ', which open and close alike, count for neither."""
    category = unicodedata.category(char)
    return 1 if category in ("Ps", "Pi") else -1 if category in ("Pe", "Pf") else 0


def trim_to_clauses(text: str, max_chars: int, min_chars: int, breaks: str, frame: str = "") -> str | None:
    """Rule `trim_clauses`: the longest run of leading clauses, ended with 。, that fits in ``max_chars``.

    Cuts only at ``breaks`` outside quotes and brackets, so no name or title is split, and never right after a
    clause that only frames what follows (``frame``: 围绕…, …方面, …中), which alone would state nothing.
    None when no cut fits.
    """
    frame_regex = re.compile(frame) if frame else None
    depth = 0
    clause_start = 0
    best = None
    for i, char in enumerate(text):
        step = _bracket_step(char)
        if step:
            depth = max(0, depth + step)
        elif char in breaks and depth == 0:
            if i + 1 > max_chars:
                break
            framing = frame_regex is not None and frame_regex.search(text[clause_start:i]) is not None
            if i >= min_chars and not framing:
                best = text[:i] + FULL_STOP
            clause_start = i + 1
    return best


def finish_sentence(text: str, finished_by: str) -> str:
    """A chosen unit without closing punctuation (a tail, a table cell) gets 。 so sentences do not run together;
    ``finished_by`` (``CompressionSection.finished_by``) holds the characters that already end a sentence."""
    text = text.strip()
    return text if not text or text[-1] in finished_by else text + FULL_STOP


def join_sentences(sentences: Sequence[str], unfinished: str) -> str:
    """Chinese sentences join without spaces; a summary that ends on one of ``unfinished`` (；，：) ends on 。
    instead."""
    text = "".join(sentences)
    return text[:-1] + FULL_STOP if text and text[-1] in unfinished else text


def hard_cut(text: str, budget_chars: int) -> str:
    """Last resort when not even one clause fits: the first characters, marked as cut with …"""
    return text[: max(0, budget_chars - 1)] + CUT_MARK
