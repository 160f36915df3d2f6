"""How long `chainstage summarize` summaries may get on the full-length provincial reports, before and after the cap.

Budgets depend on the segmentation and the budget rule only (no model), so this runs in seconds. "Before" is the
rule without `budget.cap_chars`, over each section's own body units; "after" is the shipped config: capped, and
over the whole subtree of a section with subsections. Sections of `whole_section_units` units or fewer come back
whole and are left out.

    .venv/bin/python -m benchmarks.summary_budgets
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data.load import load_report
from data.reading_config import load_reading_config
from models.section_lookup import section_units, summary_sections
from models.summarizer_config import load_summarizer_config, make_budget

CORPUS = Path(__file__).resolve().parents[1] / "data/corpus/provincial-2026"
SETTINGS = {"before: own units, no cap": ["budget.cap_chars=1000000", "hierarchy.enabled=false"],
            "after: shipped config": []}


def main() -> None:
    """Print one table row per setting: sections summarised and their character budgets."""
    reading = load_reading_config()
    reports = [load_report(path, reading) for path in sorted(CORPUS.glob("*.txt"))]
    cap = load_summarizer_config().budget.cap_chars
    print(f"{len(reports)} reports in {CORPUS.name}; default ratio budget, in characters\n")
    print(f"| setting | sections | median budget | 90th percentile | largest | over {cap} | most body units |")
    print("|---|---|---|---|---|---|---|")
    for name, overrides in SETTINGS.items():
        config = load_summarizer_config(overrides=overrides)
        budget, hierarchical = make_budget(config), config.hierarchy.enabled
        budgets, sizes = [], []
        for report in reports:
            for section in summary_sections(report, hierarchical):
                body = [unit for unit in section_units(section, hierarchical) if unit.kind == "body"]
                if len(body) > config.whole_section_units:
                    budgets.append(budget.chars(sum(len(unit.text) for unit in body)))
                    sizes.append(len(body))
        chars = np.array(budgets)
        print(f"| {name} | {len(chars)} | {int(np.median(chars))} | {int(np.percentile(chars, 90))} | "
              f"{chars.max()} | {int((chars > cap).sum())} | {max(sizes)} |")


if __name__ == "__main__":
    main()
