"""Reading: every supported kind built inside the test, plus broken versions of each."""

from __future__ import annotations

import codecs
import io
import logging
import warnings
import zipfile
from pathlib import Path

import pytest
from report_files import pdf_bytes

from data.errors import ReportError
from data.load import load_report
from data.read import read_report_text

SENTENCES = "一、基础研究。加强国家实验室建设，推进重大科技基础设施。引进高层次人才100名。"


def _docx_bytes() -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph("一、基础研究。加强国家实验室建设，推进重大科技基础设施。")
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text = "高新技术企业数量（家）"
    table.cell(0, 1).text = "2600"
    document.add_paragraph("引进高层次人才100名。")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


HTML = """<!doctype html><html><head><meta charset="utf-8"><title>科技局</title></head><body>
<nav><a href="/">首页</a> &gt; <a href="/kj">科技动态</a> &gt; 正文</nav>
<article><h1>2024年科技工作总结</h1>
<p>一、基础研究。今年我市加强国家实验室建设，推进重大科技基础设施，全年新增省级重点实验室十二家，基础研究投入占研发经费比重持续提升。</p>
<p>引进高层次人才100名，新增博士后工作站八个，青年科技人才培养计划覆盖全市高校和科研院所。</p>
<p>高新技术企业数量达到两千六百家，科技型中小企业备案入库三千家，孵化器和众创空间在孵企业超过五千家。</p>
</article>
<footer>版权所有 © 某市科学技术局 | 网站地图 | 联系我们</footer></body></html>"""


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("gbk.txt", SENTENCES.encode("gbk")),
        ("gb18030.md", SENTENCES.encode("gb18030")),
        ("bom.txt", b"\xef\xbb\xbf" + SENTENCES.encode("utf-8")),
        ("plain.txt", SENTENCES.encode("utf-8")),
        ("utf16le.txt", codecs.BOM_UTF16_LE + SENTENCES.encode("utf-16-le")),
        ("utf16be.md", codecs.BOM_UTF16_BE + SENTENCES.encode("utf-16-be")),
    ],
)
def test_text_encodings_are_detected_from_the_bytes(tmp_path, reading_config, name, payload):
    path = tmp_path / name
    path.write_bytes(payload)
    text = read_report_text(path, reading_config)
    assert text.lstrip("\ufeff") == SENTENCES


SEED = Path(__file__).resolve().parents[1] / "seeds/003_1e2a77e6e55b6189.txt"


@pytest.mark.parametrize(("bom", "codec"), [(codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")])
def test_notepad_unicode_reads_like_the_utf8_report(tmp_path, reading_config, bom, codec):
    """Windows Notepad's "Unicode" is UTF-16 with a BOM and CRLF line ends: same units, no BOM in the text."""
    text = SEED.read_text(encoding="utf-8")
    path = tmp_path / "notepad.txt"
    path.write_bytes(bom + text.replace("\n", "\r\n").encode(codec))
    assert not read_report_text(path, reading_config).startswith("\ufeff")
    units = [(u.kind, u.section_path, u.text) for u in load_report(path, reading_config).units]
    assert units == [(u.kind, u.section_path, u.text) for u in load_report(SEED, reading_config).units]


def test_truncated_utf16_names_the_encoding(tmp_path, reading_config):
    path = tmp_path / "cut.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + SENTENCES.encode("utf-16-le")[:-1])  # an odd number of bytes
    with pytest.raises(ReportError, match="undecodable UTF-16 text") as info:
        read_report_text(path, reading_config)
    assert str(path) in str(info.value)


def test_gbk_text_is_read_even_with_a_misleading_extension(tmp_path, reading_config):
    path = tmp_path / "report.html.bak"
    path.write_bytes((SENTENCES * 3).encode("gbk"))
    assert read_report_text(path, reading_config) == SENTENCES * 3


def test_docx_keeps_paragraphs_and_tables_in_order(tmp_path, reading_config):
    path = tmp_path / "report.docx"
    path.write_bytes(_docx_bytes())
    units = [u.text for u in load_report(path, reading_config).units]
    assert units[0] == "一、基础研究。"
    assert units.index("高新技术企业数量（家）") < units.index("引进高层次人才100名。")


def test_pdf_text_layer_is_read_and_wrapped_lines_rejoined(tmp_path, reading_config):
    path = tmp_path / "report.pdf"
    path.write_bytes(_wrapped_pdf())
    units = [u.text for u in load_report(path, reading_config).units]
    assert units == [
        "一、基础研究。",
        "加强国家实验室建设，推进重大科技基础设施建设和前沿科学研究。",
        "引进高层次人才100名。",
    ]


def test_html_keeps_main_text_and_drops_navigation_and_footer(tmp_path, reading_config):
    path = tmp_path / "page.html"
    path.write_text(HTML, encoding="utf-8")
    text = read_report_text(path, reading_config)
    assert "引进高层次人才100名" in text and "加强国家实验室建设" in text
    assert "网站地图" not in text and "首页" not in text


def _truncated_docx() -> bytes:
    return _docx_bytes()[:1500]


def _docx_without_document() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "not a word document")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "payload", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.txt", b"  \n\n \t", "empty file"),
        ("binary.txt", bytes(range(256)) * 8, "binary"),
        ("truncated.docx", None, "corrupt .docx"),
        ("nodoc.docx", None, "corrupt .docx"),
        ("fake.docx", "这不是文档".encode(), "corrupt .docx"),
        ("truncated.pdf", None, "corrupt .pdf"),
        ("fake.pdf", "这不是PDF".encode(), "corrupt .pdf"),
        ("english.txt", b"This report is written in English only, with no Chinese at all.", "no Chinese"),
        ("nav.html", b"<html><body><script>var a = 1;</script></body></html>", "no main text"),
    ],
)
def test_bad_files_get_one_line_errors_that_name_the_file(tmp_path, reading_config, name, payload, reason):
    if payload is None:
        payload = {
            "truncated.docx": _truncated_docx,
            "nodoc.docx": _docx_without_document,
            "truncated.pdf": lambda: _wrapped_pdf()[:400],
        }[name]()
    path = tmp_path / name
    path.write_bytes(payload)
    with pytest.raises(ReportError) as info:
        load_report(path, reading_config)
    message = str(info.value)
    assert reason in message and str(path) in message and "\n" not in message


@pytest.mark.parametrize("payload", [b"not a pdf at all", None])
def test_a_corrupt_pdf_leaves_no_library_log_or_warning(tmp_path, reading_config, caplog, payload):
    """pypdf logs "EOF marker not found" and "invalid pdf header" itself: only our one ReportError may speak."""
    path = tmp_path / "broken.pdf"
    path.write_bytes(payload or _wrapped_pdf()[:400])
    level = logging.getLogger("pypdf").level
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ReportError, match="corrupt .pdf"):
            read_report_text(path, reading_config)
    assert caplog.records == [] and caught == []
    assert logging.getLogger("pypdf").level == level  # muted for the read only


def test_scanned_pdf_without_text_layer(tmp_path, reading_config):
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    page = canvas.Canvas(buffer)
    page.rect(72, 72, 200, 200, fill=1)
    page.save()
    path = tmp_path / "scan.pdf"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ReportError, match="no text layer"):
        load_report(path, reading_config)


def test_file_over_the_size_limit_is_refused(tmp_path, reading_config):
    from dataclasses import replace

    path = tmp_path / "huge.txt"
    path.write_bytes(SENTENCES.encode() * 20)
    small = replace(reading_config, max_bytes=100)
    with pytest.raises(ReportError, match="too large"):
        load_report(path, small)


def test_missing_file_and_directory(tmp_path, reading_config):
    with pytest.raises(ReportError, match="not found"):
        load_report(tmp_path / "missing.txt", reading_config)
    with pytest.raises(ReportError, match="directory"):
        load_report(tmp_path, reading_config)


def _wrapped_pdf() -> bytes:
    """A PDF whose first sentence is hard-wrapped across two drawn lines."""
    return pdf_bytes(["一、基础研究。加强国家实验室建设，推进重大科技基础设施建设和", "前沿科学研究。",
                      "引进高层次人才100名。"])

