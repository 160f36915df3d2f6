"""Read the text of page images by OCR: PDF pages without a text layer, and .png/.jpg/.tif scans and photos.

The engine is RapidOCR (the optional ``chainstage[ocr]`` extra): PP-OCR models that ship inside its wheel, run
on ONNX Runtime, so reading never downloads anything. Image-only PDF pages are rasterised with pypdfium2 rather
than taken apart with pypdf's image extraction: PDFium draws the page as a reader sees it (JBIG2 and CCITT scans,
images cut into strips, /Rotate, crop boxes, any text drawn over the scan), where pypdf would hand back the raw
embedded images and needs jbig2dec for the format most office scanners write.
"""

from __future__ import annotations

import io
import logging
from contextlib import closing
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from data.errors import ReportError
from data.reading_config import OcrConfig

if TYPE_CHECKING:
    from PIL.Image import Image
    from rapidocr import RapidOCR

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")  # PNG, JPEG, TIFF (both byte orders)
INSTALL_HINT = "install the OCR extra to read it: pip install 'chainstage[ocr]'"

# The models inside the pinned rapidocr wheel (its defaults). Given a path, rapidocr loads the file as it is;
# given none, it looks the model up in its registry and would download it if the file were missing.
_BUNDLED_MODELS = {"Det": "PP-OCRv6_det_small.onnx", "Cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
                   "Rec": "PP-OCRv6_rec_small.onnx"}


@cache  # one engine per process and settings: it loads its three ONNX sessions on first use, not per page
def ocr_engine(config: OcrConfig) -> RapidOCR | None:
    """The OCR engine, or None when the ``chainstage[ocr]`` extra is not installed."""
    try:
        import rapidocr
    except ImportError:
        return None
    models = Path(rapidocr.__file__).parent / "models"
    return rapidocr.RapidOCR(params={
        **{f"{step}.model_path": str(models / name) for step, name in _BUNDLED_MODELS.items()},
        "Global.text_score": config.min_confidence,
        "Global.use_cls": config.angle_classifier,
        "Global.log_level": "critical",  # what goes wrong reaches the user as our one-line ReportError
        "EngineConfig.onnxruntime.intra_op_num_threads": config.threads,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    })


def _page_text(engine: RapidOCR, image: Image) -> str:
    """A page's text, one line per printed line in reading order; blank lines between paragraphs are dropped,
    so the page reads like a PDF text layer and its wrapped lines are rejoined the same way."""
    # other modes (palette, CMYK, 16-bit) become RGB; transparency is kept for rapidocr to lay on a background
    result = engine(image.convert("RGBA" if image.has_transparency_data else "RGB"))
    if not result.txts:  # to_markdown() would return a "no text detected" sentence in Chinese
        return ""
    # to_markdown groups the boxes that share a printed line and orders lines top to bottom, boxes left to right
    return "\n".join(line for line in result.to_markdown().split("\n") if line.strip())


def read_image_pages(data: bytes, path: Path, config: OcrConfig) -> list[str]:
    """The text of each page of an image file: a multi-page TIFF is a whole scanned report."""
    engine = ocr_engine(config)
    if engine is None:
        raise ReportError(path, f"a scanned image needs OCR; {INSTALL_HINT}")
    from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            # photos carry their orientation in EXIF; scanners write it into the pixels
            pages = [_page_text(engine, ImageOps.exif_transpose(frame)) for frame in ImageSequence.Iterator(image)]
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as err:
        raise ReportError(path, f"truncated or corrupt image ({type(err).__name__})") from err
    if not any(page.strip() for page in pages):
        raise ReportError(path, "OCR found no text in the image (blank page or no printed text)")
    return pages


def ocr_pdf_pages(data: bytes, pages: list[str], path: Path, config: OcrConfig) -> tuple[list[str], set[int]]:
    """Fill in the pages of a PDF that have no text layer by OCR; also return the numbers of the pages OCR read.

    Without the extra a PDF that is all scans is refused, but one with some text keeps it, with a warning.
    """
    missing = [number for number, text in enumerate(pages) if not text.strip()]
    if not missing:
        return pages, set()
    engine = ocr_engine(config)
    if engine is None:
        if len(missing) == len(pages):
            raise ReportError(path, f"PDF has no text layer (scanned image?); {INSTALL_HINT}")
        logger.warning("%s: %d of %d pages have no text layer and are left out; %s", path, len(missing), len(pages),
                       INSTALL_HINT)
        return pages, set()
    try:
        import pypdfium2
    except ImportError as err:
        raise ReportError(path, f"PDF has pages without a text layer; {INSTALL_HINT}") from err
    filled = list(pages)
    try:
        # closed at once: PDFium's memory is not Python's, and the collector does not see how much it holds
        with closing(pypdfium2.PdfDocument(data)) as document:
            for number in missing:
                filled[number] = _page_text(engine, document[number].render(scale=config.dpi / 72).to_pil())
    except pypdfium2.PdfiumError as err:
        raise ReportError(path, f"truncated or corrupt .pdf ({type(err).__name__})") from err
    return filled, set(missing)
