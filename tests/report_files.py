"""Report files built in the tests: a .docx of paragraphs and a PDF with a text layer (one builder each)."""

from __future__ import annotations

import io

LAB_LINE = "一、基础研究。加强国家实验室建设，推进重大科技基础设施建设。"


def docx_bytes(text: str) -> bytes:
    """A .docx with one paragraph per line of ``text``."""
    import docx

    document = docx.Document()
    for line in text.splitlines():
        document.add_paragraph(line)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def pdf_bytes(lines: list[str] | None = None) -> bytes:
    """A one-page PDF with a Chinese text layer, one drawn line per item (reportlab's built-in CID font)."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buffer = io.BytesIO()
    page = canvas.Canvas(buffer)
    page.setFont("STSong-Light", 12)
    for number, line in enumerate(lines or [LAB_LINE]):
        page.drawString(72, 750 - 20 * number, line)
    page.save()
    return buffer.getvalue()
