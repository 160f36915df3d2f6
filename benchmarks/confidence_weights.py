"""How much should a unit whose label its reader was unsure of weigh in training? The two quick methods tell.

Usage: .venv/bin/python benchmarks/confidence_weights.py [--medium 1 0.5 0.25 0.1 0] [--set KEY=VALUE ...]

Why: every labelled unit carries its reader's confidence (high, medium, low; `data/annotation-guide.md`), and a
medium unit is one that careful readers could label either way. `train.confidence_weights` in
`configs/classifier.yaml` weighs each unit's loss by it, in the encoder, its linear probe and the text member.
Training the encoder on every fold takes `chainstage evaluate` about 45 minutes, so this script asks first of the
two methods that fit in seconds, TF-IDF + LR and frozen e5 + LR, each with document context: on the same grouped
folds over reports, both cross-genre splits and the devset as `chainstage evaluate`, with medium and low units at
each weight in turn (1 = every unit alike, as evaluate's baselines are fit). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse

import numpy as np
from held_out_columns import COLUMNS, column_scores, split_group

from data.labeled_units import load_labeled
from data.labels import load_labels
from models.classifier_config import load_classifier_config
from models.text_member import member_probabilities
from training.baselines import embedding_logreg, fit_text_member
from training.crossval import evaluation_splits, frozen_vectors, in_context, report_folds
from training.train import unit_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--medium", type=float, nargs="+", default=[1.0, 0.5, 0.25, 0.1, 0.0],
                        help="weights of medium- and low-confidence units to try (high units weigh 1)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args()
    config = load_classifier_config(overrides=args.set)
    labels = load_labels()
    records = config.data.records()
    devset = load_labeled(config.evaluate.devset)
    vectors = frozen_vectors(records + devset, config, progress=False)
    splits: dict[str, list[tuple[list[dict], list[dict]]]] = {}
    for split, train, test in evaluation_splits(records, report_folds(records, config.evaluate.folds), devset):
        splits.setdefault(split_group(split), []).append((train, test))
    held_out = {group: [r for _, test in parts for r in test] for group, parts in splits.items()}
    print(f"{len(records)} labelled units, {len(devset)} devset units; mean macro-F1 over held-out reports "
          "(devset: pooled macro-F1), each method with document context\n")
    print("| method | medium and low units weigh | " + " | ".join(COLUMNS) + " |")
    print("|---|---:|" + "---:|" * len(COLUMNS))

    def y(part: list[dict]) -> np.ndarray:
        return np.array([labels.label2id[r["label"]] for r in part])

    def tfidf(train: list[dict], test: list[dict], weights: np.ndarray | None) -> np.ndarray:
        member = fit_text_member([r["text"] for r in train], [""] * len(train), y(train), 0.0, config.train.seed,
                                 weights)
        return member_probabilities(member, [r["text"] for r in test], len(labels.names), [""] * len(test))

    def frozen(train: list[dict], test: list[dict], weights: np.ndarray | None) -> np.ndarray:
        return embedding_logreg(np.stack([vectors[r["unit_id"]] for r in train]), y(train),
                                np.stack([vectors[r["unit_id"]] for r in test]), config.train.seed,
                                len(labels.names), weights)

    for name, method in (("tf-idf + LR", tfidf), ("frozen e5 + LR", frozen)):
        for medium in args.medium:
            weigh = {"high": 1.0, "medium": medium, "low": medium}
            probabilities = {
                group: np.concatenate([in_context(test, method(train, test, unit_weights(train, weigh)),
                                                  config.ensemble.neighbour_weight) for train, test in parts])
                for group, parts in splits.items()}
            cells = column_scores(held_out, probabilities, labels)
            print(f"| {name} + neighbours | {medium:g} | " + " | ".join(f"{c:.3f}" for c in cells) + " |",
                  flush=True)


if __name__ == "__main__":
    main()
