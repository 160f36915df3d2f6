"""Turn a report file of any supported kind into decoded text, or raise one ReportError naming the reason.

The format is sniffed from the bytes (PDF, ZIP and image magic numbers, an HTML tag) before the extension is trusted,
so a ``.txt`` that is really a PDF is still read, and a ``.pdf`` that is not one is refused clearly.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from charset_normalizer import from_bytes

from data.errors import ReportError
from data.ocr import IMAGE_MAGIC, IMAGE_SUFFIXES, ocr_pdf_pages, read_image_pages
from data.reading_config import ReadingConfig

SUPPORTED_SUFFIXES = (".txt", ".md", ".docx", ".pdf", ".html", ".htm", *IMAGE_SUFFIXES)
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_HTML = re.compile(rb"<\s*(!doctype\s+html|html|head|body|div|p)\b", re.IGNORECASE)
# The libraries that read for us log and warn about the very damage that our ReportError already reports on one
# line (pypdf: "EOF marker not found", "invalid pdf header"; trafilatura: "empty HTML tree"; its date finder
# htmldate: parser errors), so they are muted while a file is read. python-docx and charset-normalizer log
# nothing at warning level.
_READER_LOGGERS = ("pypdf", "trafilatura", "htmldate")


@contextmanager
def _readers_muted() -> Iterator[None]:
    """Silence the reading libraries' logging and warnings for the duration of one read, then restore them."""
    loggers = [logging.getLogger(name) for name in _READER_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.CRITICAL + 1)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def _is_binary(data: bytes, config: ReadingConfig) -> bool:
    """Control bytes other than tab/newline/CR/FF are rare in text in any of our encodings."""
    sample = data[:65536]
    if b"\x00" in sample:  # UTF-16 text is full of NUL bytes, but decode_text has taken it by its BOM already
        return True
    controls = sum(1 for byte in sample if byte < 32 and byte not in (9, 10, 12, 13))
    return controls / max(len(sample), 1) > config.binary_control_ratio


def decode_text(data: bytes, path: Path, config: ReadingConfig) -> str:
    """Decode plain-text bytes: UTF-16 with a BOM, UTF-8 (with or without BOM) when valid, else what
    charset-normalizer detects."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Windows Notepad's "Unicode"
        try:
            return data.decode("utf-16")  # the BOM tells the byte order, and the codec drops it
        except UnicodeDecodeError as err:
            raise ReportError(path, f"undecodable UTF-16 text ({err.reason} at byte {err.start})") from err
    if _is_binary(data, config):
        raise ReportError(path, "binary content, not a text report")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    # charset-normalizer ranks candidate encodings by how plausible the decoded text is; for Chinese bytes
    # that are not UTF-8 it returns gb18030/gbk/big5. We still demand Han text from whatever it chose.
    best = from_bytes(data).best()
    if best is None:
        raise ReportError(path, "undecodable text: no known encoding fits the bytes")
    return str(best)


def _read_docx(data: bytes, path: Path) -> str:
    import docx  # python-docx: lazy, so plain-text reading does not pay for lxml
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, PackageNotFoundError, KeyError, ValueError, OSError) as err:
        raise ReportError(path, f"truncated or corrupt .docx ({type(err).__name__})") from err
    lines: list[str] = []
    body = document.element.body
    # Walk the body in order so tables stay where they stand between paragraphs.
    for child in body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            lines.append("".join(node.text or "" for node in child.iter() if node.tag.endswith("}t")))
        elif tag == "tbl":
            for row in child.iter():
                if row.tag.endswith("}tc"):
                    lines.append("".join(node.text or "" for node in row.iter() if node.tag.endswith("}t")))
            lines.append("")
    return "\n".join(lines)


@dataclass(frozen=True)
class ReportText:
    """A report's decoded text, and the [start, end) spans of it that OCR read from page images."""

    text: str
    ocr_spans: tuple[tuple[int, int], ...]


def _starts_numbered_heading(line: str, config: ReadingConfig) -> bool:
    """A wrapped PDF line can look like a short sentence alone on its line, never like a numbered heading."""
    rule = config.heading_rule(line.strip())
    return rule is not None and rule.numbered


def _reflow_page(page_text: str, config: ReadingConfig) -> str:
    """PDF and OCR text come hard-wrapped at the page width: rejoin lines that run to the margin mid-sentence."""
    lines = [line.rstrip() for line in page_text.split("\n")]
    width = max((len(line) for line in lines), default=0)
    out: list[str] = []
    for line in lines:
        previous = out[-1] if out else ""
        wraps = (
            previous
            and len(previous) >= config.pdf_wrap_ratio * width
            and previous.rstrip(config.closers)[-1:] not in tuple(config.line_end)
            and not _starts_numbered_heading(line, config)
        )
        if wraps:
            out[-1] = previous + line.strip()
        else:
            out.append(line)
    return "\n".join(out)


def _read_pdf(data: bytes, path: Path, config: ReadingConfig) -> tuple[str, tuple[tuple[int, int], ...]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, IndexError) as err:
        raise ReportError(path, f"truncated or corrupt .pdf ({type(err).__name__})") from err
    pages, ocr_pages = ocr_pdf_pages(data, pages, path, config.ocr)
    if not "".join(pages).strip():
        raise ReportError(path, "PDF has no text layer, and OCR found no text on its pages")
    return _join_pages(pages, ocr_pages, config)


def _join_pages(pages: list[str], ocr_pages: set[int],
                config: ReadingConfig) -> tuple[str, tuple[tuple[int, int], ...]]:
    """Reflow each page and join them; also return the spans of the joined text that come from the OCR pages."""
    texts = [_reflow_page(page, config) for page in pages]
    spans, start = [], 0
    for number, text in enumerate(texts):
        if number in ocr_pages:
            spans.append((start, start + len(text)))
        start += len(text) + 1
    return "\n".join(texts), tuple(spans)


def _read_html(data: bytes, path: Path) -> str:
    import trafilatura  # lazy: it pulls lxml and friends

    # trafilatura keeps the main text and drops navigation, breadcrumbs and footers.
    text = trafilatura.extract(data, include_comments=False, include_tables=True, favor_recall=True)
    if not text or not text.strip():
        raise ReportError(path, "HTML page has no main text")
    return text


def _sniff(data: bytes, suffix: str) -> str:
    head = data[:1024].lstrip()
    if data.startswith(b"%PDF"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        return "docx"
    if data.startswith(IMAGE_MAGIC) or suffix in IMAGE_SUFFIXES:
        return "image"  # without the magic number the image reader reports it as corrupt
    if suffix in (".pdf", ".docx"):
        return suffix[1:]  # claimed but without the magic number: the reader reports it as corrupt
    if suffix in (".html", ".htm") or _HTML.search(head):
        return "html"
    return "text"


def read_report(path: str | Path, config: ReadingConfig) -> ReportText:
    """Decoded text of a report file (.txt/.md in UTF-8/BOM/GB18030/UTF-16 with BOM, .docx, .pdf, .html; scanned
    .pdf pages and .png/.jpg/.tif images by OCR), with the spans that OCR read."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > config.max_bytes:
            raise ReportError(path, f"file too large ({size:,} bytes > limit {config.max_bytes:,})")
        data = path.read_bytes()
    except IsADirectoryError as err:
        raise ReportError(path, "is a directory, not a report file") from err
    except FileNotFoundError as err:
        raise ReportError(path, "file not found") from err
    except PermissionError as err:
        raise ReportError(path, "permission denied") from err
    if not data.strip():
        raise ReportError(path, "empty file")
    kind = _sniff(data, path.suffix.lower())
    ocr_spans: tuple[tuple[int, int], ...] = ()
    with _readers_muted():
        if kind == "pdf":
            text, ocr_spans = _read_pdf(data, path, config)
        elif kind == "image":
            pages = read_image_pages(data, path, config.ocr)
            text, ocr_spans = _join_pages(pages, set(range(len(pages))), config)
        elif kind == "docx":
            text = _read_docx(data, path)
        elif kind == "html":
            text = _read_html(data, path)
        else:
            text = decode_text(data, path, config)
    check_chinese(text, path, config)
    return ReportText(text, ocr_spans)


def read_report_text(path: str | Path, config: ReadingConfig) -> str:
    """The decoded text of a report file alone (tests, notebooks)."""
    return read_report(path, config).text


def check_chinese(text: str, path: str | Path, config: ReadingConfig) -> None:
    """Refuse text with no or too little Han script: the models only know Chinese reports."""
    if not text.strip():
        raise ReportError(path, "no text in the file")
    han = len(_HAN.findall(text))
    visible = sum(1 for ch in text if not ch.isspace())
    if han < config.min_cjk_chars or han / max(visible, 1) < config.min_cjk_ratio:
        raise ReportError(path, f"no Chinese text ({han} Han characters of {visible})")
