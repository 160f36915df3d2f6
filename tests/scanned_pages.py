"""Synthetic scans for the OCR test and benchmark: report text set on A4 pages, as a scanner would give it.

Lines are wrapped at the right margin by measuring the glyphs, so the reader has to rejoin them as it rejoins a
real scan; a page holds 29 lines of 16 pt text (the size of Chinese government documents). The same printed
lines can also be drawn as a PDF with a text layer, to check that a scan reads like its text-layer twin.
"""

from __future__ import annotations

import difflib
import io
import subprocess
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

DPI = 150
PAGE = (1240, 1754)  # A4 at 150 dpi
MARGIN = 120
FONT_PX = 33  # 16 pt at 150 dpi
LINE_PX = 52


def cjk_font_file() -> str | None:
    """A font file that draws Chinese: the project's chart font when it is installed, else one fontconfig knows."""
    try:
        from models.fonts import cjk_font_path

        found = cjk_font_path()
    except ImportError:  # the font package is not installed here
        found = None
    if found and Path(found).is_file():
        return str(found)
    try:
        listed = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:  # no fontconfig on this machine
        return None
    files = sorted(line.split(":")[0].strip() for line in listed.splitlines() if line.strip())
    return files[0] if files else None


def _font(path: str) -> ImageFont.FreeTypeFont:
    """The Simplified Chinese face of a font collection (Noto's .ttc holds JP, KR, SC, TC, HK), else its first."""
    faces = []
    for index in range(8):
        try:
            faces.append(ImageFont.truetype(path, FONT_PX, index=index))
        except OSError:
            break
    return next((face for face in faces if face.getname()[0].endswith(" SC")), faces[0])


def printed_pages(text: str, font_file: str) -> list[list[str]]:
    """The lines of each page once ``text`` is set on A4 pages, every paragraph wrapped at the right margin."""
    font = _font(font_file)
    width = PAGE[0] - 2 * MARGIN
    printed: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for char in paragraph:
            if font.getlength(line + char) > width:
                printed.append(line)
                line = ""
            line += char
        printed.append(line)
    per_page = (PAGE[1] - 2 * MARGIN) // LINE_PX
    return [printed[first:first + per_page] for first in range(0, len(printed), per_page)]


def page_images(pages: list[list[str]], font_file: str) -> list[Image.Image]:
    """Each page drawn black on white, as a grey-scale scan."""
    font = _font(font_file)
    images = []
    for lines in pages:
        image = Image.new("L", PAGE, 255)
        draw = ImageDraw.Draw(image)
        for row, line in enumerate(lines):
            draw.text((MARGIN, MARGIN + row * LINE_PX), line, font=font, fill=0)
        images.append(image)
    return images


def image_only_pdf(images: list[Image.Image]) -> bytes:
    """A PDF of one image per page and no text layer, like a scanner's."""
    buffer = io.BytesIO()
    images[0].save(buffer, "PDF", save_all=True, append_images=images[1:], resolution=DPI)
    return buffer.getvalue()


def text_layer_pdf(pages: list[list[str]]) -> bytes:
    """The same lines at the same places, as text (reportlab's built-in Chinese font, nothing to install)."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    points = 72 / DPI
    buffer = io.BytesIO()
    document = canvas.Canvas(buffer, pagesize=(PAGE[0] * points, PAGE[1] * points))
    for lines in pages:
        document.setFont("STSong-Light", FONT_PX * points)
        for row, line in enumerate(lines):
            document.drawString(MARGIN * points, (PAGE[1] - MARGIN - row * LINE_PX - FONT_PX) * points, line)
        document.showPage()
    document.save()
    return buffer.getvalue()


def char_accuracy(expected: str, got: str) -> float:
    """1 - character errors / len(expected), the errors counted from difflib's alignment of the two texts."""
    matcher = difflib.SequenceMatcher(None, expected, got, autojunk=False)
    errors = sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal")
    return 1 - errors / max(len(expected), 1)
