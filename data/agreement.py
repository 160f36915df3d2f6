"""Inter-annotator agreement between the two labelling passes: ``python -m data.agreement [--labels provincial]``.

Cohen's kappa (scikit-learn) between the first pass and the independent second pass over the same units, overall
and per report, and between the adjudicated final labels and the second pass; and how often the passes disagree by
the first reader's confidence, which tells how far a medium- or low-confidence label can be trusted
(``train.confidence_weights`` in ``configs/classifier.yaml`` weighs training units by it).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from sklearn.metrics import cohen_kappa_score, confusion_matrix

from data.errors import LabelingError
from data.labeled_units import load_labeled, model_picked

LABELED = Path(__file__).resolve().parent / "labeled"


def pass_agreement(first: list[dict], second: list[dict]) -> dict:
    """Kappa, raw agreement and the disagreement pairs over the units both passes labelled."""
    by_id = {record["unit_id"]: record["label"] for record in first}
    pairs = [(by_id[record["unit_id"]], record["label"]) for record in second if record["unit_id"] in by_id]
    a, b = zip(*pairs, strict=True)
    return {
        "units": len(pairs),
        "kappa": float(cohen_kappa_score(a, b)),
        "agreement": sum(x == y for x, y in pairs) / len(pairs),
        "disagreements": Counter((x, y) for x, y in pairs if x != y),
    }


def per_report_kappa(first: list[dict], second: list[dict]) -> dict[str, dict]:
    """pass_agreement within each report; kappa is nan where a report's shared units all carry one label."""
    out = {}
    for report in sorted({record["report_id"] for record in second}):
        part = [record for record in second if record["report_id"] == report]
        labels_seen = {record["label"] for record in part} | {
            record["label"] for record in first if record["report_id"] == report}
        result = pass_agreement(first, part)
        out[report] = result if len(labels_seen) > 1 else {**result, "kappa": float("nan")}
    return out


def disagreement_by_confidence(first: list[dict], second: list[dict]) -> dict[str, dict[str, int]]:
    """Units both passes labelled and how many of them they label differently, by the first pass's confidence."""
    second_label = {record["unit_id"]: record["label"] for record in second}
    out: dict[str, dict[str, int]] = {}
    for record in first:
        if record["unit_id"] in second_label:
            counts = out.setdefault(record["confidence"], {"units": 0, "disagree": 0})
            counts["units"] += 1
            counts["disagree"] += record["label"] != second_label[record["unit_id"]]
    return out


def agreement_by_choice(first: list[dict], second: list[dict], final: list[dict]) -> dict[str, dict]:
    """pass_agreement over the units chosen with their passages and, apart, over those a model picked for review
    (``model_picked``): picked units are the hard cases of one model, so their agreement is reported on its own."""
    picked = {record["unit_id"] for record in final if model_picked(record)}
    return {name: pass_agreement(first, [record for record in second if (record["unit_id"] in picked) == chosen])
            for name, chosen in (("with their passages", False), ("picked by a model for review", True))
            if any((record["unit_id"] in picked) == chosen for record in second)}


def annotator_comparison(first_file: Path, second_file: Path, names: list[str]) -> dict:
    """pass_agreement between two annotators' files, with the confusion matrix and the units to adjudicate.

    The matrix has the first file's labels as rows and the second's as columns, in the label set's order.
    """
    first, second = load_labeled(first_file), load_labeled(second_file)
    for file, records in ((first_file, first), (second_file, second)):
        unknown = sorted({record["label"] for record in records} - set(names))
        if unknown:
            raise LabelingError(f"{file}: unknown label '{unknown[0]}'")
    by_id = {record["unit_id"]: record for record in first}
    pairs = [(by_id[record["unit_id"]], record) for record in second if record["unit_id"] in by_id]
    if not pairs:
        raise LabelingError(f"{first_file}, {second_file}: no unit is labelled in both files")
    matrix = confusion_matrix([a["label"] for a, _ in pairs], [b["label"] for _, b in pairs], labels=names)
    to_adjudicate = [{"unit_id": a["unit_id"], "first": a["label"], "second": b["label"], "text": a["text"]}
                     for a, b in pairs if a["label"] != b["label"]]
    return {**pass_agreement(first, second), "confusion": matrix.tolist(), "to_adjudicate": to_adjudicate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", default="seeds", help="the labelled set: NAME.jsonl, NAME_pass1/2.jsonl")
    args = parser.parse_args()
    first = load_labeled(LABELED / f"{args.labels}_pass1.jsonl")
    second = load_labeled(LABELED / f"{args.labels}_pass2.jsonl")
    final = load_labeled(LABELED / f"{args.labels}.jsonl")
    for name, labelled in (("first pass vs second pass", first), ("final (adjudicated) vs second pass", final)):
        result = pass_agreement(labelled, second)
        print(f"{name}: kappa {result['kappa']:.3f}, raw agreement {result['agreement']:.3f} "
              f"over {result['units']} units")
        for (x, y), count in result["disagreements"].most_common():
            print(f"  {x} -> {y}: {count}")
    print("\nfirst pass vs second pass, per report:\n\n| report | units | kappa | raw agreement |\n|---|---|---|---|")
    for report, result in per_report_kappa(first, second).items():
        print(f"| {report} | {result['units']} | {result['kappa']:.3f} | {result['agreement']:.3f} |")
    by_choice = agreement_by_choice(first, second, final)
    if len(by_choice) > 1:
        print("\nfirst pass vs second pass, by how the units were chosen:\n\n"
              "| units chosen | units | kappa | raw agreement |\n|---|---|---|---|")
        for name, result in by_choice.items():
            print(f"| {name} | {result['units']} | {result['kappa']:.3f} | {result['agreement']:.3f} |")
    print("\nfirst pass vs second pass, by the first reader's confidence:\n\n"
          "| confidence | units | labelled differently | share |\n|---|---|---|---|")
    for confidence, counts in sorted(disagreement_by_confidence(first, second).items()):
        units, disagree = counts["units"], counts["disagree"]
        print(f"| {confidence} | {units} | {disagree} | {disagree / units:.3f} |")


if __name__ == "__main__":
    main()
