"""Carry labels over to the current segmentation after it changes: ``python -m data.reconcile_labels``.

A label moves to a current unit with the same offsets and text; failing that, to the unit of the same report
whose text is identical (once); every current unit left without a label is listed for a person to label.
Nothing is guessed: a unit whose text changed is never given an old label.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from data.labeled_units import load_labeled
from data.load import load_report
from data.reading_config import load_reading_config
from data.segment import Unit

ROOT = Path(__file__).resolve().parents[1]


def reconcile(records: list[dict], units: list[Unit]) -> tuple[list[dict], list[Unit]]:
    """Labelled records for the current units, and the units that could not be carried over."""
    by_span = {(r["report_id"], r["start"], r["end"], r["text"]): r for r in records}
    spans = {(u.report_id, u.start, u.end, u.text) for u in units}
    by_text: dict[tuple[str, str], list[dict]] = {}
    for record in records:  # only labels whose unit moved may go to a unit of the same text: each label once
        if (record["report_id"], record["start"], record["end"], record["text"]) not in spans:
            by_text.setdefault((record["report_id"], record["text"]), []).append(record)
    carried, missing = [], []
    for unit in units:
        old = by_span.get((unit.report_id, unit.start, unit.end, unit.text))
        if old is None and by_text.get((unit.report_id, unit.text)):
            old = by_text[(unit.report_id, unit.text)].pop(0)
        if old is None:
            missing.append(unit)
            continue
        carried.append({**old, "unit_id": unit.unit_id, "kind": unit.kind, "section_path": list(unit.section_path),
                        "start": unit.start, "end": unit.end, "text": unit.text})
    return carried, missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labeled", type=Path, nargs="?", default=ROOT / "data/labeled/seeds.jsonl")
    parser.add_argument("--reports", type=Path, default=ROOT / "seeds", help="folder of the labelled reports")
    parser.add_argument("--write", action="store_true", help="rewrite the labelled file with the carried labels")
    args = parser.parse_args()
    config = load_reading_config()
    units = [u for path in sorted(args.reports.glob("*.txt")) for u in load_report(path, config).units]
    carried, missing = reconcile(load_labeled(args.labeled), units)
    print(f"carried {len(carried)} labels; {len(missing)} units need a person to label them")
    for unit in missing:
        print(f"  {unit.unit_id}\t{unit.text}", flush=True)
    if args.write:
        args.labeled.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in carried), encoding="utf-8")


if __name__ == "__main__":
    main()
