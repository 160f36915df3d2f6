"""The five columns in which the benchmarks report a method, scored by `chainstage evaluate`'s own code.

The mean macro-F1 over held-out reports for each genre of the grouped folds and for both cross-genre splits, and the
pooled macro-F1 on the devset. Shared by the benchmarks that rescore evaluate's folds from its predictions.
"""

from __future__ import annotations

import numpy as np

from data.labels import LabelSet
from training.crossval import _per_genre
from training.metrics import classification_metrics

COLUMNS = ("provincial", "seeds", "provincial → seeds", "seeds → provincial", "devset")


def split_group(split: str) -> str:
    """The group of one of evaluate's splits: every grouped fold ('fold 1', ...) is one group, the rest stand alone."""
    return "fold" if split.startswith("fold") else split


def held_out_groups(splits: list[tuple[str, list[dict], list[dict]]]) -> dict[str, list[dict]]:
    """Each group's held-out records, in the order of `evaluation_splits`: the order its probabilities are stacked."""
    held_out: dict[str, list[dict]] = {}
    for split, _, test in splits:
        held_out.setdefault(split_group(split), []).extend(test)
    return held_out


def column_scores(held_out: dict[str, list[dict]], probabilities: dict[str, np.ndarray],
                  labels: LabelSet) -> list[float]:
    """The five columns from each group's held-out records and their probabilities, row for row; NaN for a group that
    the run did not score (`evaluate.splits` without cross_genre or devset)."""
    def mean_report_f1(group: str, genre: str) -> float:
        if group not in held_out:
            return float("nan")
        predicted = probabilities[group].argmax(1)
        return _per_genre(held_out[group], {"m": predicted}, labels)[genre]["m"]["macro_f1_mean"]

    cells = [mean_report_f1("fold", genre) for genre in ("provincial", "seeds")]
    cells += [mean_report_f1(split, split.split()[-1]) for split in ("provincial → seeds", "seeds → provincial")]
    if "devset" not in held_out:
        return [*cells, float("nan")]
    gold = np.array([labels.label2id[r["label"]] for r in held_out["devset"]])
    cells.append(classification_metrics(gold, probabilities["devset"].argmax(1), labels.names)["macro_f1"])
    return cells
