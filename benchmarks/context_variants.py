"""Would another use of a report's context serve better than document context? Variants on evaluate's predictions.

Usage: .venv/bin/python benchmarks/context_variants.py --predictions RUN/predictions.jsonl [--set KEY=VALUE ...]

Why: after the ensemble, the served model mixes each unit's probabilities with the mean of its two neighbours in the
same section (`ensemble.neighbour_weight`, `models/document_context.py`), and that one step adds about 0.02-0.03 mean
macro-F1 on held-out reports of both genres (docs/evaluation.md). Half the errors on held-out provincial reports are
产业发展 against 其他, often inside passages of one topic, so a wider or a learnt use of the context might add more.
Each variant rescores the served pair's probabilities ("fine-tuned + tf-idf") of one `chainstage evaluate` run, so
no model is trained again and every variant sees the same encoder:

- the adjacent mix at other weights (0.3 is the default);
- the adjacent mix plus a share of the mean of every other unit of the unit's own section;
- forward-backward over the units of a run of one report, with the label transitions counted on the gold labels
  of that split's training reports (a first-order Markov chain; emissions are the pair's probabilities divided by
  the training prior, both tempered by 0.5 (a square root), so that the chain does not override a unit's own
  evidence);
- the report's own label prior re-estimated by EM (Saerens et al., 2002; three rounds, each estimate half-way back
  to the training prior), then the adjacent mix: provincial reports differ in their share of 其他.

Columns that the run did not score (`evaluate.splits` without cross_genre or devset) are shown as "—".
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import numpy as np
from held_out_columns import COLUMNS, column_scores, held_out_groups, split_group

from data.labeled_units import adjacent_runs, load_labeled
from data.labels import LabelSet, load_labels
from models.classifier_config import load_classifier_config
from training.crossval import evaluation_splits, in_context, report_folds

PAIR = "fine-tuned + tf-idf"


def runs_of(records: list[dict]) -> list[list[int]]:
    """Row indices of each run of adjacent non-furniture units of one report, as evaluate scores them."""
    return [[i for i in run if records[i]["kind"] != "furniture"] for run in adjacent_runs(records)]


def with_section_mean(records: list[dict], probs: np.ndarray, adjacent: float, section: float) -> np.ndarray:
    """The adjacent mix, plus ``section`` of the mean of the other units whose section path is the unit's own."""
    mixed = in_context(records, probs, adjacent)
    out = mixed.copy()
    for run in runs_of(records):
        paths = [tuple(records[i]["section_path"]) for i in run]
        for position, i in enumerate(run):
            others = [j for j, path in zip(run, paths, strict=True) if j != i and path == paths[position]]
            if paths[position] and others:
                out[i] = (1 - section) * mixed[i] + section * probs[others].mean(axis=0)
    return out


def transitions(train: list[dict], labels: LabelSet) -> tuple[np.ndarray, np.ndarray]:
    """Label-to-next-label probabilities within runs of the training reports (add-one), and the training prior."""
    counts = np.ones((len(labels.names), len(labels.names)))
    for run in runs_of(train):
        for a, b in zip(run, run[1:], strict=False):
            counts[labels.label2id[train[a]["label"]], labels.label2id[train[b]["label"]]] += 1
    units = [labels.label2id[r["label"]] for r in train if r["kind"] != "furniture"]
    prior = np.bincount(units, minlength=len(labels.names)) / len(units)
    return counts / counts.sum(axis=1, keepdims=True), prior


def forward_backward(records: list[dict], probs: np.ndarray, chain: tuple[np.ndarray, np.ndarray],
                     temper: float = 0.5) -> np.ndarray:
    """Posterior label marginals of every unit under the chain, run by run (rows normalised at each step)."""
    moves, prior = chain
    moves = moves ** temper
    moves /= moves.sum(axis=1, keepdims=True)
    out = probs.copy()
    for run in runs_of(records):
        if not run:
            continue
        emission = (probs[run] / prior) ** temper
        forward, backward = np.zeros_like(emission), np.ones_like(emission)
        forward[0] = prior * emission[0] / (prior * emission[0]).sum()
        for t in range(1, len(run)):
            forward[t] = forward[t - 1] @ moves * emission[t]
            forward[t] /= forward[t].sum()
        for t in range(len(run) - 2, -1, -1):
            backward[t] = moves @ (emission[t + 1] * backward[t + 1])
            backward[t] /= backward[t].sum()
        posterior = forward * backward
        out[run] = posterior / posterior.sum(axis=1, keepdims=True)
    return out


def report_prior(records: list[dict], probs: np.ndarray, prior: np.ndarray, share: float = 0.5,
                 rounds: int = 3) -> np.ndarray:
    """Each report's probabilities under its own label prior, re-estimated by EM from them (Saerens et al., 2002)."""
    out = probs.copy()
    reports = np.array([r["report_id"] for r in records])
    for report in set(reports):
        rows = reports == report
        estimate = prior
        for _ in range(rounds):
            shifted = probs[rows] * estimate / prior
            estimate = share * (shifted / shifted.sum(axis=1, keepdims=True)).mean(axis=0) + (1 - share) * prior
        shifted = probs[rows] * estimate / prior
        out[rows] = shifted / shifted.sum(axis=1, keepdims=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", required=True, help="predictions.jsonl of a `chainstage evaluate` run")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    args = parser.parse_args()
    config = load_classifier_config(overrides=args.set)
    labels = load_labels()
    weight = config.ensemble.neighbour_weight
    records = config.data.records()
    devset = load_labeled(config.evaluate.devset) if config.evaluate.devset else None
    pair: dict[tuple[str, str], np.ndarray] = {}
    with open(args.predictions, encoding="utf-8") as lines:
        for line in map(json.loads, lines):
            pair[line["split"], line["unit_id"]] = np.array(line["probabilities"][PAIR])
    scored_splits = {split for split, _ in pair}
    splits = [s for s in evaluation_splits(records, report_folds(records, config.evaluate.folds), devset)
              if s[0] in scored_splits]
    variants: dict[str, Callable[[list[dict], list[dict], np.ndarray], np.ndarray]] = {
        "no context (the pair alone)": lambda train, test, p: p,
        **{f"adjacent {w}" + (" (served)" if w == weight else ""):
           (lambda train, test, p, w=w: in_context(test, p, w)) for w in (0.2, 0.3, 0.4, 0.5)},
        **{f"adjacent {weight} + section mean {s}":
           (lambda train, test, p, s=s: with_section_mean(test, p, weight, s)) for s in (0.1, 0.2)},
        "forward-backward, training transitions":
            lambda train, test, p: forward_backward(test, p, transitions(train, labels)),
        f"report prior by EM, then adjacent {weight}":
            lambda train, test, p: in_context(test, report_prior(test, p, transitions(train, labels)[1]), weight),
    }
    print(f"{args.predictions}: the pair's probabilities on {len(pair)} held-out units; splits of `chainstage "
          "evaluate`; mean macro-F1 over held-out reports (devset: pooled macro-F1)"
          + (f"; --set {' '.join(args.set)}" if args.set else "") + "\n")
    print("| variant | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    held_out = held_out_groups(splits)
    for name, variant in variants.items():
        rescored: dict[str, list[np.ndarray]] = {}
        for split, train, test in splits:
            probs = np.stack([pair[split, r["unit_id"]] for r in test])
            rescored.setdefault(split_group(split), []).append(variant(train, test, probs))
        cells = column_scores(held_out, {group: np.concatenate(p) for group, p in rescored.items()}, labels)
        print(f"| {name} | " + " | ".join("—" if np.isnan(c) else f"{c:.3f}" for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
