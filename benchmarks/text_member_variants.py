"""Would another character TF-IDF member serve better? Its variants on the folds of `chainstage evaluate`.

Usage: .venv/bin/python benchmarks/text_member_variants.py [--predictions RUN/predictions.jsonl] [--variant NAME]
       [--set KEY=VALUE ...]

Why: the served model is the geometric mean of the fine-tuned encoder and a character 1-3-gram TF-IDF + logistic
regression over the unit's own text (the text member, `training/baselines.py::fit_text_member`; the option
`ensemble.member_neighbours` adds a block of its neighbours' text). Each variant changes the member: a block of
features from the unit's section headings, its neighbours' text or its jieba words, longer n-grams, or the L2
strength. It is fit on the same grouped folds over reports, both cross-genre splits and the devset as `chainstage
evaluate`, and scored alone and with document context (`ensemble.neighbour_weight`). The first row is the unit's own
text alone, so it reproduces evaluate's "tf-idf + LR" rows and is the served member.

With --predictions (the predictions.jsonl of an evaluate run of the default config), each variant is also
fit as training fits it (on every training unit of the fold with `ensemble.member_refit`, else on those less the
dev split; `--set` overrides config keys as `chainstage` does), and combined with that run's
fine-tuned encoder probabilities, so a variant is judged by what it adds to the encoder. The ensemble temperature
is left at 1 (the encoder's dev logits are not in the file): it changes no label before document context, and
only slightly what document context mixes. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import jieba
import numpy as np
from held_out_columns import COLUMNS, column_scores, held_out_groups, split_group
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer

from data.labeled_units import load_labeled
from data.labels import load_labels
from models.classifier_config import load_classifier_config
from models.text_member import combine, member_probabilities
from training.crossval import evaluation_splits, in_context, report_folds
from training.train import record_neighbours, split_dev


@dataclass(frozen=True)
class Variant:
    """Feature blocks beside the unit's own text, each with its weight, and the member's settings."""
    blocks: dict[str, float] = field(default_factory=dict)
    ngram_max: int = 3
    c: float = 10.0


VARIANTS = {
    "own text (tf-idf + LR)": Variant(),
    "+ nearest heading, weight 0.5": Variant({"heading": 0.5}),
    "+ nearest heading, weight 1": Variant({"heading": 1.0}),
    "+ two nearest headings, weight 0.5": Variant({"headings": 0.5}),
    "+ neighbours' text, weight 0.3": Variant({"neighbours": 0.3}),
    "+ neighbours' text, weight 0.5": Variant({"neighbours": 0.5}),
    "+ neighbours' text, weight 1": Variant({"neighbours": 1.0}),
    "+ neighbours' text, weight 0.5, 1-4-grams": Variant({"neighbours": 0.5}, ngram_max=4),
    "+ neighbours' text, weight 0.5, C 3": Variant({"neighbours": 0.5}, c=3.0),
    "+ jieba words 1-2-grams, weight 0.5": Variant({"words": 0.5}),
    "+ jieba words 1-2-grams, weight 1": Variant({"words": 1.0}),
    "character 1-4-grams": Variant(ngram_max=4),
    "C 3": Variant(c=3.0),
    "C 30": Variant(c=30.0),
}


def headings(record: dict, depth: int) -> str:
    """The ``depth`` innermost headings above the unit (a heading unit's own title is the last of its path)."""
    path = record["section_path"][:-1] if record["kind"] == "heading" else record["section_path"]
    return " ".join(path[-depth:])


def with_neighbour_text(records: list[dict]) -> list[dict]:
    """Each record with its neighbours' text, as training gives it to the served member."""
    return [{**record, "neighbours": text} for record, text in zip(records, record_neighbours(records), strict=True)]


FIELDS: dict[str, Callable[[dict], str]] = {
    "text": lambda r: r["text"],
    "heading": lambda r: headings(r, 1),
    "headings": lambda r: headings(r, 2),
    "neighbours": lambda r: r["neighbours"],
    "words": lambda r: " ".join(jieba.lcut(r["text"])),
}


def member(variant: Variant, seed: int) -> Pipeline:
    """The variant as one scikit-learn pipeline over records; the first block is always the unit's own text."""
    def vectorizer(name: str) -> TfidfVectorizer:
        # jieba's words, already split by spaces, as 1-2-grams; every other block reads character n-grams
        if name == "words":
            return TfidfVectorizer(analyzer="word", token_pattern=r"\S+", ngram_range=(1, 2), sublinear_tf=True)
        return TfidfVectorizer(analyzer="char", ngram_range=(1, variant.ngram_max), sublinear_tf=True)

    blocks = {"text": 1.0, **variant.blocks}
    union = FeatureUnion(
        [(name, make_pipeline(FunctionTransformer(lambda rs, get=FIELDS[name]: [get(r) for r in rs]), vectorizer(name)))
         for name in blocks],
        transformer_weights=blocks)
    regression = LogisticRegression(max_iter=2000, C=variant.c, class_weight="balanced", solver="newton-cg",
                                    random_state=seed)
    return make_pipeline(union, regression)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", help="predictions.jsonl of a `chainstage evaluate` run of the default")
    parser.add_argument("--variant", action="append", choices=list(VARIANTS), help="only these rows (repeatable)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    args = parser.parse_args()
    config = load_classifier_config(overrides=args.set)
    labels = load_labels()
    k, seed, weight = len(labels.names), config.train.seed, config.ensemble.neighbour_weight
    records = with_neighbour_text(config.data.records())
    devset = with_neighbour_text(load_labeled(config.evaluate.devset))
    encoder: dict[tuple[str, str], np.ndarray] = {}
    if args.predictions:
        with open(args.predictions, encoding="utf-8") as lines:
            for line in map(json.loads, lines):
                encoder[line["split"], line["unit_id"]] = np.array(line["probabilities"]["fine-tuned"])
    splits = evaluation_splits(records, report_folds(records, config.evaluate.folds), devset)
    kinds = ["alone", "+ neighbours"] + (["+ encoder", "+ encoder + neighbours"] if encoder else [])
    print(f"{len(records)} labelled units, {len(devset)} devset units; folds and splits of `chainstage evaluate`; "
          "mean macro-F1 over held-out reports (devset: pooled macro-F1)"
          + (f"; encoder probabilities from {args.predictions}" if encoder else "")
          + (f"; --set {' '.join(args.set)}" if args.set else "") + "\n")
    print("| variant | scored | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---:|" * len(COLUMNS))
    held_out = held_out_groups(splits)
    for name in args.variant or VARIANTS:
        variant = VARIANTS[name]
        scored: dict[str, dict[str, list[np.ndarray]]] = {kind: {} for kind in kinds}
        for split, train, test in splits:
            y = np.array([labels.label2id[r["label"]] for r in train])
            alone = member_probabilities(member(variant, seed).fit(train, y), test, k)
            results = {"alone": alone, "+ neighbours": in_context(test, alone, weight)}
            if encoder:
                # as training fits the served member: on every training unit once it is refit, else less the dev split
                fit_on = train if config.ensemble.member_refit else split_dev(train, config.data.dev_fraction, seed,
                                                                                config.data.dev_split)[0]
                served = member(variant, seed).fit(fit_on, np.array([labels.label2id[r["label"]] for r in fit_on]))
                tuned = np.stack([encoder[split, r["unit_id"]] for r in test])
                pair = combine([tuned, member_probabilities(served, test, k)])
                results |= {"+ encoder": pair, "+ encoder + neighbours": in_context(test, pair, weight)}
            for kind, probabilities in results.items():
                scored[kind].setdefault(split_group(split), []).append(probabilities)
        for kind in kinds:
            cells = column_scores(held_out, {group: np.concatenate(p) for group, p in scored[kind].items()}, labels)
            print(f"| {name} | {kind} | " + " | ".join(f"{c:.3f}" for c in cells) + " |", flush=True)

if __name__ == "__main__":
    main()
