"""Speed and character accuracy of reading scans by OCR, against reading the same pages from a PDF text layer.

Usage: .venv/bin/python benchmarks/ocr_speed.py [--pages 6] [--threads 2]

Sets the paragraphs of a seed report (001) that fit on ``--pages`` A4 pages with the test suite's synthetic scanner
(tests/scanned_pages.py: 16 pt text, 150 dpi grey-scale scans), then reads them through `data.read.read_report`
in this process:

- text layer: the same lines drawn as PDF text (the baseline: no OCR);
- scanned PDF: the page images in an image-only PDF, rasterised by pypdfium2 at each ``ocr.dpi`` and OCR'd (the
  scans hold 150 dpi, so a higher ``ocr.dpi`` can only cost time here, not gain accuracy);
- PNG pages: the page images as .png files, OCR'd as they are.

The OCR engine loads once per setting before the clock starts (its load time is printed apart). Wall time depends on
what else the machine runs, so the load average is printed, and CPU seconds per page (all threads of this process)
beside it. Character accuracy is 1 - character errors / characters of the source, after the same normalisation.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

from data.normalize import normalize_text
from data.ocr import ocr_engine
from data.read import read_report
from data.reading_config import ReadingConfig, load_reading_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic scanner the OCR test uses

from scanned_pages import (  # noqa: E402
    char_accuracy,
    cjk_font_file,
    image_only_pdf,
    page_images,
    printed_pages,
    text_layer_pdf,
)

SEED = ROOT / "seeds" / "001_2040a8d96ddfc16d.txt"


def measure(paths: list[Path], reading: ReadingConfig, source: str) -> tuple[float, float, float]:
    """Wall and CPU seconds (all threads) to read every file, and the character accuracy of their joined text."""
    started, cpu = time.perf_counter(), time.process_time()
    texts = [read_report(path, reading).text for path in paths]
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    accuracy = char_accuracy(normalize_text(source, reading).text, normalize_text("\n".join(texts), reading).text)
    return seconds, cpu_seconds, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=6, help="pages of the seed report to read")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads of the OCR engine")
    args = parser.parse_args()
    print(f"command: .venv/bin/python benchmarks/ocr_speed.py --pages {args.pages} --threads {args.threads}")

    font = cjk_font_file()
    if font is None:
        sys.exit("no font that draws Chinese: install fonts-wqy-microhei (make system-deps) or chainstage's chart font")
    paragraphs = SEED.read_text(encoding="utf-8").split("\n")
    count = 1  # the most whole paragraphs that fit on --pages pages
    while count < len(paragraphs) and len(printed_pages("\n".join(paragraphs[:count + 1]), font)) <= args.pages:
        count += 1
    source = "\n".join(paragraphs[:count])
    pages = printed_pages(source, font)
    images = page_images(pages, font)
    shipped = load_reading_config()
    load1, load5, _ = os.getloadavg()
    print(f"{len(pages)} A4 pages of {SEED.name} ({len(source):,} characters); {os.cpu_count()} CPUs, load average "
          f"{load1:.1f} (1 min) {load5:.1f} (5 min); ocr: threads {args.threads}, min_confidence "
          f"{shipped.ocr.min_confidence}, angle_classifier {shipped.ocr.angle_classifier}")

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "text.pdf").write_bytes(text_layer_pdf(pages))
        (work / "scan.pdf").write_bytes(image_only_pdf(images))
        pngs = [work / f"page-{number}.png" for number in range(len(images))]
        for image, path in zip(images, pngs, strict=True):
            image.save(path)

        print(f"{'input':<30} {'pages/s':>8} {'s/page':>7} {'CPU s/page':>10} {'x baseline':>10} {'accuracy':>8}"
              "  engine load s")
        seconds, cpu_seconds, accuracy = measure([work / "text.pdf"], shipped, source)
        baseline = len(pages) / seconds
        print(f"{'text layer (baseline)':<30} {baseline:>8.2f} {seconds / len(pages):>7.2f} "
              f"{cpu_seconds / len(pages):>10.2f} {1:>10.4f} {accuracy:>8.4f}  -")
        runs = [(f"scanned PDF, {dpi} dpi" + (" (shipped)" if dpi == shipped.ocr.dpi else ""), [work / "scan.pdf"],
                 dpi) for dpi in sorted({150, shipped.ocr.dpi, 300})]
        runs.append(("PNG pages (150 dpi scans)", pngs, shipped.ocr.dpi))
        for label, paths, dpi in runs:
            reading = dataclasses.replace(shipped, ocr=dataclasses.replace(shipped.ocr, dpi=dpi, threads=args.threads))
            loading = time.perf_counter()
            engine = ocr_engine(reading.ocr)
            if engine is None:
                sys.exit("the OCR extra is not installed: pip install 'chainstage[ocr]'")
            engine(images[0].crop((0, 0, 600, 200)).convert("RGB"))  # loads the models: the clock sees pages only
            load_seconds = time.perf_counter() - loading
            seconds, cpu_seconds, accuracy = measure(paths, reading, source)
            rate = len(pages) / seconds
            print(f"{label:<30} {rate:>8.2f} {seconds / len(pages):>7.2f} {cpu_seconds / len(pages):>10.2f} "
                  f"{rate / baseline:>10.4f} {accuracy:>8.4f}  {load_seconds:.1f}")


if __name__ == "__main__":
    main()
