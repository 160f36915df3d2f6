"""Print the label counts per report of a labelled file as a Markdown table: ``python -m data.label_counts``."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from data.labeled_units import load_labeled, model_picked
from data.labels import load_labels


def counts_table(records: list[dict], names: list[str]) -> str:
    reports = sorted({r["report_id"] for r in records})
    lines = ["| report | " + " | ".join(names) + " | total |", "|---|" + "---|" * (len(names) + 1)]
    for report in [*reports, "all"]:
        counts = Counter(r["label"] for r in records if report in ("all", r["report_id"]))
        lines.append(f"| {report} | " + " | ".join(str(counts[n]) for n in names) + f" | {sum(counts.values())} |")
    confidence = Counter(r["confidence"] for r in records)
    lines.append("")
    lines.append("confidence: " + ", ".join(f"{k} {confidence[k]}" for k in ("high", "medium", "low")))
    picked = Counter(r["label"] for r in records if model_picked(r))
    if picked:  # units evaluation never scores: their share of each label is worth seeing
        lines.append(f"picked by a model for review (never scored): {sum(picked.values())}, of them "
                     + ", ".join(f"{n} {picked[n]}" for n in names))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labeled", type=Path, nargs="?",
                        default=Path(__file__).resolve().parent / "labeled" / "seeds.jsonl")
    print(counts_table(load_labeled(parser.parse_args().labeled), load_labels().names))


if __name__ == "__main__":
    main()
