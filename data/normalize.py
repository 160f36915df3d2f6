"""Normalise decoded report text, keeping a map from every normalised character back to the original.

Two things happen here, both 1:1 or deleting, so the map stays a plain index list:
- punctuation width: the seeds write ``,:;()`` half-width and provincial reports write ``，：；（）``; the
  classifier and the heading patterns should see one form, so Chinese punctuation becomes full-width and
  full-width ASCII letters and digits become half-width;
- line joining: a line broken mid-sentence (annotation guide: ``10065.7\\n亿元``) is joined to the next.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from data.reading_config import ReadingConfig

# Half-width punctuation that Chinese text uses as full-width. ',' and ':' stay half-width between digits
# (thousand separators, clock times); '.' is never touched (decimal points, "1." headings).
_TO_FULL = {",": "，", ":": "：", ";": "；", "!": "！", "?": "？", "(": "（", ")": "）"}
_KEEP_BETWEEN_DIGITS = {",", ":"}


@dataclass(frozen=True)
class NormalizedText:
    """Normalised text; ``origin[i]`` is the index in the original text of ``text[i]``; ``ocr_spans`` are the
    [start, end) spans of the original text that OCR read from page images."""

    text: str
    origin: list[int]
    ocr_spans: tuple[tuple[int, int], ...]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a [start, end) span of the normalised text back to the original text."""
        return self.origin[start], self.origin[end - 1] + 1

    def read_by_ocr(self, start: int, end: int) -> bool:
        """Whether OCR read any of the [start, end) span of the normalised text: its characters may be misread."""
        if start >= end:
            return False
        first, stop = self.original_span(start, end)
        return any(first < span_end and span_start < stop for span_start, span_end in self.ocr_spans)


def _width(text: str) -> str:
    out = []
    for i, ch in enumerate(text):
        code = ord(ch)
        if ch in _TO_FULL:
            between_digits = 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()
            out.append(ch if ch in _KEEP_BETWEEN_DIGITS and between_digits else _TO_FULL[ch])
        elif 0xFF10 <= code <= 0xFF19 or 0xFF21 <= code <= 0xFF3A or 0xFF41 <= code <= 0xFF5A or ch == "．":
            out.append(chr(code - 0xFEE0))  # full-width ASCII letters, digits and '．' -> half-width
        elif ch in "\u3000\u00a0\t":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def _ends_line(line: str, config: ReadingConfig) -> bool:
    """True when the line ends a paragraph: it closes with a sentence end, a colon, or is a heading."""
    core = line.rstrip(config.closers)
    return not core or core[-1] in config.line_end


def _joins_next(line: str, nxt: str, config: ReadingConfig) -> bool:
    """A line broken mid-sentence: no closing punctuation, long or ending mid-phrase, next line directly on."""
    if not line or not nxt or config.stands_alone(nxt):
        return False
    if any(regex.match(line) for regex in config.join_regexes):
        return True
    if _ends_line(line, config) or config.stands_alone(line):
        return False
    return len(line) >= config.join_min_chars or line[-1] in config.join_after


def normalize_text(raw: str, config: ReadingConfig, ocr_spans: tuple[tuple[int, int], ...] = ()) -> NormalizedText:
    """Normalise ``raw`` (NFC, punctuation width, newlines, broken lines joined) with an origin map; ``ocr_spans``
    (offsets into ``raw``) are kept so that units can tell whether OCR read them."""
    chars: list[str] = []
    origin: list[int] = []
    i = 0
    # NFC is length-changing only for decomposed input, so normalise per character to keep the map exact.
    while i < len(raw):
        ch = raw[i]
        if ch == "\r":
            if i + 1 < len(raw) and raw[i + 1] == "\n":
                i += 1
                continue
            ch = "\n"
        chars.append(unicodedata.normalize("NFC", ch)[:1])
        origin.append(i)
        i += 1
    text = _width("".join(chars))

    lines = text.split("\n")
    out: list[str] = []
    out_origin: list[int] = []
    pos = 0
    continuing = False  # this line continues the previous (joined) one: drop its indentation
    for n, line in enumerate(lines):
        nxt = lines[n + 1].strip() if n + 1 < len(lines) else ""
        join = _joins_next(line.strip(), nxt, config)
        lead = len(line) - len(line.lstrip()) if continuing else 0
        end = len(line.rstrip()) if join else len(line)
        out.append(line[lead:end])
        out_origin.extend(origin[pos + lead : pos + end])
        if not join and n + 1 < len(lines):
            out.append("\n")
            out_origin.append(origin[pos + len(line)])
        continuing = join
        pos += len(line) + 1
    return NormalizedText("".join(out), out_origin, ocr_spans)
