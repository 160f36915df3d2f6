"""The one entry point from a report file (or a string) to a segmented Report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from data.errors import ConfigError
from data.normalize import normalize_text
from data.read import check_chinese, read_report
from data.reading_config import ReadingConfig
from data.segment import Report, segment_report


def load_report(path: str | Path, config: ReadingConfig, report_id: str | None = None) -> Report:
    """Read, normalise and segment a report file; the report id defaults to the file stem."""
    path = Path(path)
    raw = read_report(path, config)
    return segment_report(normalize_text(raw.text, config, raw.ocr_spans), report_id or path.stem, str(path), config)


def report_from_text(text: str, config: ReadingConfig, report_id: str = "text") -> Report:
    """Segment a report given as a string (notebooks, tests)."""
    check_chinese(text, report_id, config)
    return segment_report(normalize_text(text, config), report_id, "<text>", config)


def find_report_file(report_id: str, report_dirs: Sequence[str], config_key: str) -> Path:
    """``<report_id>.txt`` in exactly one of ``report_dirs`` (the folders that config key lists)."""
    found = [Path(folder) / f"{report_id}.txt" for folder in report_dirs
             if (Path(folder) / f"{report_id}.txt").is_file()]
    if len(found) != 1:
        where = "none" if not found else "more than one"
        raise ConfigError(f"report '{report_id}' is in {where} of {config_key} ({', '.join(report_dirs)})")
    return found[0]
