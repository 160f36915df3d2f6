"""Review batches on disk: JSONL, CSV, or Label Studio tasks beside their labeling config; read back losslessly.

A batch row is one pre-labelled unit. ``label`` starts as the model's label and is what the reviewer corrects;
``model_label``, ``probability`` and the runner-up keep what the model said. In Label Studio the model's label
is a prediction the reviewer accepts or changes, and the reviewer's choice comes back as an annotation.
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Literal

from data.errors import LabelingError
from data.labels import LabelSet

BatchFormat = Literal["jsonl", "csv", "label-studio"]

# Reviewer-facing columns first. unit_id comes last, so a CSV cut short anywhere leaves a row that fails to import.
BATCH_FIELDS = ("rank", "label", "confidence", "note", "text", "section_path", "model_label", "probability",
                "second_label", "second_probability", "score", "model", "strategy", "report_id", "source", "kind",
                "start", "end", "unit_id")
REQUIRED_FIELDS = ("unit_id", "report_id", "source", "text", "label")
REVIEWER_FIELDS = ("label", "confidence", "note")  # what a reviewer writes; Label Studio keeps them out of `data`
_NUMBERS = {"rank": int, "start": int, "end": int, "probability": float, "second_probability": float, "score": float}
CHOICES_NAME, TEXT_NAME = "label", "text"  # the Choices and Text tags of the labeling config


def label_config_path(batch: Path) -> Path:
    """Where the Label Studio labeling config of a batch goes: ``batch.json`` -> ``batch.label-config.xml``."""
    return batch.with_name(f"{batch.stem}.label-config.xml")


def label_studio_config(labels: LabelSet) -> str:
    """The labeling config: the unit's section path as a header, its text, and one choice of the six labels."""
    view = ET.Element("View")
    ET.SubElement(view, "Header", value="$section")
    ET.SubElement(view, "Text", name=TEXT_NAME, value="$text")
    choices = ET.SubElement(view, "Choices", name=CHOICES_NAME, toName=TEXT_NAME, choice="single",
                            showInLine="true")
    for label in labels.labels:
        ET.SubElement(choices, "Choice", value=label.name, hint=label.definition)
    ET.indent(view)
    return ET.tostring(view, encoding="unicode") + "\n"


def _task(row: dict[str, Any]) -> dict[str, Any]:
    """One Label Studio task: the unit in ``data``, the model's label as a prediction scored by its probability."""
    data = {key: row[key] for key in BATCH_FIELDS if key not in REVIEWER_FIELDS}
    data["section"] = " › ".join(row["section_path"]) or "（无标题）"
    choice = {"id": "model", "from_name": CHOICES_NAME, "to_name": TEXT_NAME, "type": "choices",
              "value": {"choices": [row["model_label"]]}}
    return {"data": data, "predictions": [{"model_version": row["model"], "score": row["probability"],
                                           "result": [choice]}]}


def write_batch(rows: list[dict[str, Any]], path: Path, fmt: BatchFormat, labels: LabelSet) -> list[Path]:
    """Write a batch in ``fmt`` (Label Studio also gets its labeling config beside it); returns the files written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        path.write_text("".join(json.dumps({k: row[k] for k in BATCH_FIELDS}, ensure_ascii=False) + "\n"
                                for row in rows), encoding="utf-8")
        return [path]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=BATCH_FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in rows:  # the section path stays a JSON list: headings may contain any separator
            writer.writerow({**row, "section_path": json.dumps(row["section_path"], ensure_ascii=False)})
        path.write_text(out.getvalue(), encoding="utf-8-sig")  # the BOM lets Excel read the Chinese text
        return [path]
    path.write_text(json.dumps([_task(row) for row in rows], ensure_ascii=False, indent=1), encoding="utf-8")
    config = label_config_path(path)
    config.write_text(label_studio_config(labels), encoding="utf-8")
    return [path, config]


def _checked(row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise LabelingError(f"{where}: expected a JSON object per unit")
    missing = [key for key in REQUIRED_FIELDS if row.get(key) in (None, "")]
    if missing:
        raise LabelingError(f"{where}: row lacks '{missing[0]}'")
    return row


def _read_jsonl(path: Path, text: str) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(_checked(json.loads(line), f"{path}:{number}"))
        except json.JSONDecodeError as err:
            raise LabelingError(f"{path}:{number}: not valid JSON ({err.msg}); is the file truncated?") from err
    return rows


def _read_csv(path: Path, text: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text), strict=True)
    rows = []
    try:
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if None in row or None in row.values():
                raise LabelingError(f"{where}: the row's field count differs from the header's; is the file "
                                    "truncated?")
            try:
                typed = {key: _NUMBERS[key](value) if key in _NUMBERS and value != "" else value
                         for key, value in row.items()}
                typed["section_path"] = json.loads(row.get("section_path") or "[]")
            except (ValueError, json.JSONDecodeError) as err:
                raise LabelingError(f"{where}: bad value ({err})") from err
            rows.append(_checked(typed, where))
    except csv.Error as err:
        raise LabelingError(f"{path}:{reader.line_num}: not valid CSV ({err}); is the file truncated?") from err
    return rows


def _choice(result: Any) -> str | None:
    """The label a Label Studio result list chose, if any."""
    for item in result if isinstance(result, list) else []:
        if isinstance(item, dict) and item.get("from_name") == CHOICES_NAME and item.get("type") == "choices":
            chosen = item.get("value", {}).get("choices") or []
            return chosen[0] if len(chosen) == 1 else None
    return None


def _from_task(task: Any, where: str) -> dict[str, Any] | None:
    """A row from a Label Studio task: the last kept annotation, else the model's prediction; None if skipped."""
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise LabelingError(f"{where}: a Label Studio task needs a 'data' object")
    annotations = task.get("annotations") or []
    kept = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if annotations and not kept:
        return None  # the reviewer skipped the task
    source = kept[-1] if kept else next(iter(task.get("predictions") or []), {})
    label = _choice(source.get("result"))
    if label is None:
        raise LabelingError(f"{where}: no single '{CHOICES_NAME}' choice in its annotation or prediction")
    data = {key: value for key, value in task["data"].items() if key in BATCH_FIELDS}
    return _checked({**data, "label": label, "confidence": "", "note": ""}, where)


def _read_label_studio(path: Path, text: str) -> list[dict[str, Any]]:
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as err:
        raise LabelingError(f"{path}: not valid JSON at line {err.lineno} ({err.msg}); is the file truncated?") \
            from err
    if not isinstance(tasks, list):
        raise LabelingError(f"{path}: a Label Studio export is a JSON list of tasks")
    rows = [_from_task(task, f"{path}: task {number}") for number, task in enumerate(tasks, start=1)]
    return [row for row in rows if row is not None]


def read_batch(path: Path) -> list[dict[str, Any]]:
    """Rows of a reviewed batch in any of the three formats, told apart by content (a list, objects, or CSV)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise LabelingError(f"{path}: batch file not found") from err
    except UnicodeDecodeError as err:
        raise LabelingError(f"{path}: not UTF-8 text") from err
    start = text.lstrip()[:1]
    if not start:
        raise LabelingError(f"{path}: the batch file is empty")
    if start == "[":
        return _read_label_studio(path, text)
    if start == "{":
        return _read_jsonl(path, text)
    return _read_csv(path, text)
