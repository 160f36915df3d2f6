"""The labelled-unit files (``data/labeled/*.jsonl``): schema, loading, and the model input of a unit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data.errors import ConfigError
from data.segment import Unit

REQUIRED_FIELDS = ("report_id", "unit_id", "section_path", "start", "end", "text", "label", "confidence", "note")
CONFIDENCES = ("high", "medium", "low")


def read_records(path: str | Path, required: Sequence[str], what: str) -> list[dict[str, Any]]:
    """Read a JSONL file of records (``what``: labelled units, reference summaries), checking each has the
    ``required`` fields, so a truncated or hand-edited file fails on the line that is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}:{number}: not valid JSON ({err.msg}); is the file truncated?") from err
        missing = [key for key in required if key not in record]
        if missing:
            raise ConfigError(f"{path}:{number}: record lacks field '{missing[0]}'")
        records.append(record)
    return records


def load_labeled(path: str | Path) -> list[dict[str, Any]]:
    """Read a labelled JSONL file, checking every record has the schema's fields."""
    return read_records(path, REQUIRED_FIELDS, "labelled data file")


def load_labeled_files(paths: list[str] | list[Path], *, picked_units: bool) -> list[dict[str, Any]]:
    """Read several labelled files into one list; each record's ``genre`` is its file's stem unless it names one.

    One file per genre (seeds.jsonl, provincial.jsonl) is what lets evaluation test across genres. Without
    ``picked_units`` the units that a model picked for review (``model_picked``) are left out.
    """
    records = []
    for path in paths:
        for record in load_labeled(path):
            if model_picked(record) and not picked_units:
                continue
            record.setdefault("genre", Path(path).stem)
            records.append(record)
    duplicated = len(records) - len({record["unit_id"] for record in records})
    if duplicated:
        raise ConfigError(f"{', '.join(map(str, paths))}: {duplicated} unit ids are labelled in more than one file")
    return records


def model_picked(record: dict[str, Any]) -> bool:
    """Whether a model chose this unit for review (`chainstage label export` by uncertainty, margin or diverse).

    Such units are the ones that model found hard, not a sample of their report: they may train
    (``data.picked_units``), but never score in a test fold or the dev split, which would then overweight what the
    picking model got wrong. Units chosen by passage or at random carry no strategy, or "random".
    """
    return record.get("strategy") not in (None, "", "random")


def heading_context(section_path: list[str] | tuple[str, ...], is_heading: bool) -> str:
    """The nearest heading above a unit (a heading's own title is the last path element, so skip it)."""
    path = list(section_path)[:-1] if is_heading else list(section_path)
    return path[-1] if path else ""


def unit_context(unit: Unit) -> str:
    return heading_context(unit.section_path, unit.kind == "heading")


def record_context(record: dict[str, Any]) -> str:
    return heading_context(record["section_path"], record.get("kind") == "heading")


def adjacent_runs(records: Sequence[dict[str, Any]]) -> list[list[int]]:
    """Row indices of each run of adjacent labelled units (``follows_previous``), in order."""
    runs: list[list[int]] = []
    for i, follows in enumerate(follows_previous(records)):
        if follows and runs:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def follows_previous(records: Sequence[dict[str, Any]]) -> list[bool]:
    """Whether each labelled unit comes right after the record before it (same report, next unit number).

    Labelled files hold runs of a report's units, not always all of them, so an unlabelled gap must not make two
    passages neighbours.
    """
    ids = [record["unit_id"].rsplit("-", 1) for record in records]
    return [i > 0 and ids[i - 1][0] == report and int(ids[i - 1][1]) + 1 == int(number)
            for i, (report, number) in enumerate(ids)]
