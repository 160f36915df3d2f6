"""Would an ensemble of fine-tuned encoders trained with other seeds generalise better, and how far apart are seeds?

Usage: .venv/bin/python benchmarks/seed_ensemble.py RUN_A/predictions.jsonl RUN_B/predictions.jsonl [...]

Why: every comparison in docs/classifier.md sets one `chainstage evaluate` run against another, so the spread
between two runs that differ only in `train.seed` is the noise that a change must beat. The same runs also show what
serving several seeds as one model would add: each run's served pair ("fine-tuned + tf-idf", encoder and text
member calibrated as a whole) is combined across runs as the geometric mean, then document context is applied as
`chainstage evaluate` applies it. The last rows are each method's mean ± std (population) over the runs taken one
by one. The runs must share their folds (same labelled data and `evaluate.folds`). Scores with evaluate's own code:
mean macro-F1 over held-out reports (devset: pooled macro-F1). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from held_out_columns import COLUMNS, column_scores, split_group

from data.labeled_units import load_labeled
from data.labels import load_labels
from models.classifier_config import load_classifier_config
from models.text_member import combine
from training.crossval import in_context


def read_run(path: str) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """(split, unit id) → each method's probabilities."""
    with open(path, encoding="utf-8") as lines:
        return {(row["split"], row["unit_id"]): {m: np.array(p) for m, p in row["probabilities"].items()}
                for row in map(json.loads, lines)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="predictions.jsonl of `chainstage evaluate` runs that differ in seed")
    args = parser.parse_args()
    config = load_classifier_config()
    labels = load_labels()
    labelled = config.data.records() + load_labeled(config.evaluate.devset)
    records = {r["unit_id"]: r for r in labelled}
    runs = [read_run(path) for path in args.runs]
    keys = list(runs[0])
    if any(set(run) != set(keys) for run in runs[1:]):
        raise SystemExit("the runs do not hold the same held-out units: were they run on the same folds?")
    by_split: dict[str, list[str]] = {}
    for split, unit in keys:
        by_split.setdefault(split, []).append(unit)
    rows = {**{f"run {i + 1}": [i] for i in range(len(runs))}, "all runs, geometric mean": list(range(len(runs)))}
    print(f"{len(keys)} held-out units; runs: {', '.join(args.runs)}; mean macro-F1 over held-out reports "
          "(devset: pooled macro-F1)\n")
    print("| runs | method | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---:|" * len(COLUMNS))
    held_out: dict[str, list[dict]] = {}
    for split, units in by_split.items():
        held_out.setdefault(split_group(split), []).extend(records[unit] for unit in units)
    per_run: dict[str, list[list[float]]] = {}
    for name, members in rows.items():
        for method, context in (("fine-tuned", False), ("fine-tuned + tf-idf", False), ("fine-tuned + tf-idf", True)):
            probs: dict[str, list[np.ndarray]] = {}
            for split, units in by_split.items():
                test = [records[unit] for unit in units]
                mixed = combine([np.stack([runs[i][split, unit][method] for unit in units]) for i in members])
                probs.setdefault(split_group(split), []).append(
                    in_context(test, mixed, config.ensemble.neighbour_weight) if context else mixed)
            cells = column_scores(held_out, {group: np.concatenate(p) for group, p in probs.items()}, labels)
            label = method + (" + neighbours" if context else "")
            print(f"| {name} | {label} | " + " | ".join(f"{c:.3f}" for c in cells) + " |", flush=True)
            if len(members) == 1:
                per_run.setdefault(label, []).append(cells)
    # the runs one by one, summarised: what one run of the default is worth, whatever its seed
    for label, scores in per_run.items():
        mean, std = np.mean(scores, axis=0), np.std(scores, axis=0)
        print(f"| mean ± std over the {len(scores)} runs | {label} | "
              + " | ".join(f"{m:.3f} ± {d:.3f}" for m, d in zip(mean, std, strict=True)) + " |")


if __name__ == "__main__":
    main()
