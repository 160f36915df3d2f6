"""A report's stage profile: the share of units per stage, overall and per section, with evidence sentences."""

from __future__ import annotations

from collections import Counter
from typing import Any

from models.predictor import ClassifiedReport


def stage_profile(classified: ClassifiedReport, evidence_per_stage: int) -> dict[str, Any]:
    """Shares count body units only (headings and furniture would double-count or add noise)."""
    rows = [row for row in classified.rows() if row["kind"] == "body"]
    names = classified.label_names

    def shares(part: list[dict]) -> dict[str, float]:
        counts = Counter(row["label"] for row in part)
        return {name: counts[name] / len(part) if part else 0.0 for name in names}

    sections: dict[tuple[str, ...], list[dict]] = {}
    for row in rows:
        sections.setdefault(tuple(row["section_path"]), []).append(row)
    evidence = {}
    for name in names:
        confident = sorted((row for row in rows if row["label"] == name), key=lambda row: -row["probability"])
        evidence[name] = [{"unit_id": row["unit_id"], "text": row["text"], "probability": row["probability"]}
                          for row in confident[:evidence_per_stage]]
    return {
        "report_id": classified.report.report_id,
        "units": len(rows),
        "overall": shares(rows),
        "sections": [{"section_path": list(path), "units": len(part), "shares": shares(part)}
                     for path, part in sections.items()],
        "evidence": evidence,
    }
