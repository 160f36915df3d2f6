"""Import a reviewed batch into a labelled file: check every row against its report and the existing labels first.

Nothing is written unless the whole batch passes, and then in one atomic step (a temp file renamed over the
target), so a failed or interrupted import leaves every labelled file exactly as it was. An existing label is never
overwritten: a unit labelled differently elsewhere is a conflict for a person to settle.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from data.errors import LabelingError, ReportError
from data.label_batches import read_batch
from data.labeled_units import CONFIDENCES, load_labeled
from data.labels import LabelSet
from data.load import load_report
from data.reading_config import ReadingConfig
from data.segment import Report, Unit


def existing_labels(files: list[str] | list[Path]) -> dict[str, tuple[str, Path]]:
    """Every labelled unit id in ``files`` (those that exist), with its label and the file that holds it."""
    labelled: dict[str, tuple[str, Path]] = {}
    for file in dict.fromkeys(Path(f).resolve() for f in files):
        if not file.is_file():
            continue
        for record in load_labeled(file):
            labelled.setdefault(record["unit_id"], (record["label"], file))
    return labelled


def _reports(rows: list[dict[str, Any]], reading: ReadingConfig, problems: list[str]) -> dict[str, Report]:
    """Each source report of the batch, segmented as the export saw it; unreadable ones become problems."""
    reports = {}
    for source in dict.fromkeys(str(row["source"]) for row in rows):
        try:
            reports[source] = load_report(Path(source), reading)
        except ReportError as err:
            problems.append(f"report {err}")
    return reports


def _row_problems(row: dict[str, Any], labels: LabelSet, reports: dict[str, Report],
                  units: dict[str, Unit], existing: dict[str, tuple[str, Path]]) -> list[str]:
    unit_id, label = row["unit_id"], row["label"]
    problems = []
    if label not in labels.names:
        problems.append(f"{unit_id}: unknown label '{label}'")
    if row.get("confidence") and row["confidence"] not in CONFIDENCES:
        problems.append(f"{unit_id}: unknown confidence '{row['confidence']}' (high, medium or low)")
    report = reports.get(str(row["source"]))
    if report is not None:
        unit = units.get(unit_id)
        if row["report_id"] != report.report_id:
            problems.append(f"{unit_id}: report_id '{row['report_id']}' is not that of {row['source']}")
        elif unit is None or unit.report_id != report.report_id:
            problems.append(f"{unit_id}: no such unit in report {row['source']}")
        elif unit.text != row["text"] or any(row.get(key) not in (None, "", getattr(unit, key))
                                             for key in ("start", "end")):
            problems.append(f"{unit_id}: text or offsets differ from the unit in {row['source']}")
        elif unit.kind == "furniture":
            problems.append(f"{unit_id}: page furniture is never labelled")
    if unit_id in existing:
        held, file = existing[unit_id]
        what = "already labelled" if held == label else f"conflicts with '{held}'"
        problems.append(f"{unit_id}: '{label}' {what} in {file}")
    return problems


def _record(row: dict[str, Any], unit: Unit, provenance: dict[str, Any], default_confidence: str) -> dict:
    """A labelled-file record (data/README.md schema) with where the label came from."""
    return {
        "report_id": unit.report_id, "unit_id": unit.unit_id, "kind": unit.kind,
        "section_path": list(unit.section_path), "start": unit.start, "end": unit.end, "text": unit.text,
        "label": row["label"], "confidence": row.get("confidence") or default_confidence,
        "note": row.get("note") or "", **provenance,
        "prelabel_model": row.get("model"), "prelabel_label": row.get("model_label"),
        "prelabel_probability": row.get("probability"), "strategy": row.get("strategy"),
    }


def append_atomically(path: Path, records: list[dict[str, Any]]) -> None:
    """Append JSONL records by writing old + new content to a temp file beside ``path`` and renaming it over."""
    old = path.read_bytes() if path.is_file() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    new = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(old + new)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def import_batch(batch: Path, annotator: str, into: Path, check_against: list[str] | list[Path], labels: LabelSet,
                 reading: ReadingConfig, default_confidence: str) -> list[dict[str, Any]]:
    """Validate a reviewed batch as a whole, then append it to ``into``; returns the records appended.

    ``check_against`` are the other labelled files (the training set): a unit labelled there, or in ``into``,
    is a duplicate or a conflict, never silently labelled twice.
    """
    if not annotator.strip():
        raise LabelingError(f"{batch}: --annotator must name the person who reviewed the batch")
    rows = read_batch(batch)
    if not rows:
        raise LabelingError(f"{batch}: no reviewed units in the batch")
    existing = existing_labels([*check_against, into])
    problems: list[str] = []
    reports = _reports(rows, reading, problems)
    units = {unit.unit_id: unit for report in reports.values() for unit in report.units}
    repeated = [unit_id for unit_id, count in Counter(row["unit_id"] for row in rows).items() if count > 1]
    problems += [f"{unit_id}: appears more than once in the batch" for unit_id in repeated]
    for row in rows:
        problems += _row_problems(row, labels, reports, units, existing)
    if problems:
        raise LabelingError(f"{batch}: nothing written, {len(problems)} problem(s): {'; '.join(problems)}")
    provenance = {"annotator": annotator.strip(), "labelled_at": datetime.now(timezone.utc).isoformat(
        timespec="seconds"), "batch": batch.name}
    records = [_record(row, units[row["unit_id"]], provenance, default_confidence) for row in rows]
    append_atomically(into, records)
    return records
