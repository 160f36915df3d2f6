"""OCR: scans of seed text, as images and image-only PDFs, read through the normal reading path and marked as OCR."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import pytest
from PIL import Image
from scanned_pages import (
    DPI,
    PAGE,
    char_accuracy,
    cjk_font_file,
    image_only_pdf,
    page_images,
    printed_pages,
    text_layer_pdf,
)

from data.errors import ReportError
from data.load import load_report
from data.normalize import normalize_text
from data.ocr import ocr_engine

SEED = Path(__file__).resolve().parents[1] / "seeds" / "001_2040a8d96ddfc16d.txt"
LINES = SEED.read_text(encoding="utf-8").split("\n")
ONE_PAGE = "\n".join(LINES[:4])  # a heading and three paragraphs: one A4 page
CHAPTER = "\n".join(LINES[:10])  # the whole first chapter: three pages, paragraphs running over page breaks
SHORT = "\n".join(LINES[10:12])  # the next chapter's heading and first paragraph
BLANK = (PAGE[0] // 2, PAGE[1] // 2)  # a blank page, small to keep the test quick

needs_ocr = pytest.mark.skipif(importlib.util.find_spec("rapidocr") is None, reason="chainstage[ocr] not installed")
needs_font = pytest.mark.skipif(cjk_font_file() is None, reason="no font that draws Chinese to render scans with")


@pytest.fixture
def without_ocr(monkeypatch):
    """As if the chainstage[ocr] extra were not installed: importing rapidocr fails."""
    monkeypatch.setitem(sys.modules, "rapidocr", None)
    ocr_engine.cache_clear()
    yield
    ocr_engine.cache_clear()  # the next test builds the real engine again


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", dpi=(DPI, DPI))
    return buffer.getvalue()


def _joined_pdf(*documents: bytes) -> bytes:
    """One PDF holding the pages of several, in order."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for document in documents:
        writer.append(io.BytesIO(document))
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _check_scan(tmp_path: Path, name: str, scan: bytes, source: str, pages: list[list[str]], reading_config) -> None:
    """The scan reads like the source, and its lines are rejoined as those of the same pages with a text layer."""
    (tmp_path / name).write_bytes(scan)
    (tmp_path / "twin.pdf").write_bytes(text_layer_pdf(pages))
    report = load_report(tmp_path / name, reading_config)
    twin = load_report(tmp_path / "twin.pdf", reading_config)
    assert char_accuracy(normalize_text(source, reading_config).text, report.text) >= 0.9
    # The text-layer twin, not the source, is the reference for line breaks: both go through the same rejoining,
    # and a paragraph that a page break cuts at a sentence end or after a heading's line stays cut in both.
    # (pypdf ends a page with a newline, so the twin has a blank line at each page break.)
    lines, twin_lines = ([line for line in text.split("\n") if line.strip()] for text in (report.text, twin.text))
    assert len(lines) == len(twin_lines) < sum(len(page) for page in pages) / 3
    assert report.units and all(report.normalized.read_by_ocr(unit.start, unit.end) for unit in report.units)
    assert not any(twin.normalized.read_by_ocr(unit.start, unit.end) for unit in twin.units)


@needs_ocr
@needs_font
def test_page_image_is_read_by_ocr(tmp_path, reading_config):
    pages = printed_pages(ONE_PAGE, cjk_font_file())
    (image,) = page_images(pages, cjk_font_file())
    _check_scan(tmp_path, "scan.png", _png(image), ONE_PAGE, pages, reading_config)


@needs_ocr
@needs_font
def test_image_only_pdf_is_read_by_ocr(tmp_path, reading_config):
    pages = printed_pages(CHAPTER, cjk_font_file())
    assert len(pages) == 3
    _check_scan(tmp_path, "scan.pdf", image_only_pdf(page_images(pages, cjk_font_file())), CHAPTER, pages,
                reading_config)


@needs_ocr
@needs_font
def test_only_the_scanned_page_of_a_pdf_is_marked_as_ocr(tmp_path, reading_config):
    scan = image_only_pdf(page_images(printed_pages(SHORT, cjk_font_file()), cjk_font_file()))
    path = tmp_path / "mixed.pdf"
    path.write_bytes(_joined_pdf(text_layer_pdf([["一、基础研究。加强国家实验室建设。"]]), scan))
    report = load_report(path, reading_config)
    flags = [report.normalized.read_by_ocr(unit.start, unit.end) for unit in report.units]
    texts = [unit.text for unit in report.units]
    assert texts[:3] == ["一、基础研究。", "加强国家实验室建设。", "二、2021年科技创新工作打算"]
    assert flags[:2] == [False, False] and all(flags[2:])


@needs_ocr
@pytest.mark.parametrize("name", ["blank.png", "blank.jpg", "blank.tif"])
def test_blank_page_image_gets_a_one_line_error(tmp_path, reading_config, name):
    path = tmp_path / name
    Image.new("L", BLANK, 255).save(path)
    with pytest.raises(ReportError) as info:
        load_report(path, reading_config)
    message = str(info.value)
    assert "OCR found no text" in message and str(path) in message and "\n" not in message


@needs_ocr
def test_blank_scanned_pdf_gets_a_one_line_error(tmp_path, reading_config):
    path = tmp_path / "blank.pdf"
    path.write_bytes(image_only_pdf([Image.new("L", BLANK, 255)]))
    with pytest.raises(ReportError) as info:
        load_report(path, reading_config)
    message = str(info.value)
    assert "no text layer" in message and "OCR found no text" in message and "\n" not in message


@needs_ocr
@pytest.mark.parametrize(("name", "payload"), [("cut.png", _png(Image.new("L", (200, 100), 255))[:60]),
                                               ("fake.jpg", "这不是图片".encode())])
def test_corrupt_image_gets_a_one_line_error(tmp_path, reading_config, name, payload):
    path = tmp_path / name
    path.write_bytes(payload)
    with pytest.raises(ReportError) as info:
        load_report(path, reading_config)
    message = str(info.value)
    assert "corrupt image" in message and str(path) in message and "\n" not in message


@pytest.mark.parametrize("name", ["scan.png", "scan.pdf"])
def test_without_the_extra_a_scan_says_to_install_it(tmp_path, reading_config, without_ocr, name):
    page = Image.new("L", BLANK, 255)
    path = tmp_path / name
    path.write_bytes(_png(page) if name.endswith(".png") else image_only_pdf([page]))
    with pytest.raises(ReportError) as info:
        load_report(path, reading_config)
    message = str(info.value)
    assert "pip install 'chainstage[ocr]'" in message and str(path) in message and "\n" not in message


def test_without_the_extra_a_pdf_keeps_its_text_pages(tmp_path, reading_config, without_ocr, caplog):
    path = tmp_path / "mixed.pdf"
    path.write_bytes(_joined_pdf(text_layer_pdf([["一、基础研究。加强国家实验室建设。"]]),
                                 image_only_pdf([Image.new("L", BLANK, 255)])))
    report = load_report(path, reading_config)
    assert [unit.text for unit in report.units] == ["一、基础研究。", "加强国家实验室建设。"]
    assert "1 of 2 pages have no text layer" in caplog.text and "chainstage[ocr]" in caplog.text
