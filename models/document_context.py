"""Document context: a unit's stage leans towards its neighbours' in the same section.

Sentences of a passage share a topic, and an isolated sentence ("推动……再上新台阶") is ambiguous alone. Mixing each
unit's probabilities with the mean of its adjacent units in the same section (or below it) helped every method on
held-out reports of both genres (docs/evaluation.md). Written by hand: it is a few lines over the segmenter's own
section paths, which no sequence-labelling library knows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def smooth_within_sections(probs: np.ndarray, section_paths: Sequence[Sequence[str]], kinds: Sequence[str],
                           weight: float) -> np.ndarray:
    """Mix each row with the mean of its two neighbours that lie in its section; rows stay distributions.

    ``probs`` are one report's units in reading order. Furniture (page numbers, web buttons) is neither smoothed nor
    used as a neighbour; a neighbour counts when its section path starts with the unit's own, so a heading draws on
    the first line of its section but not on the last line of the section before it.
    """
    if weight == 0 or len(probs) < 2:
        return probs
    paths = [tuple(path) for path in section_paths]
    smoothed = probs.copy()
    for i, (path, kind) in enumerate(zip(paths, kinds, strict=True)):
        if kind == "furniture":
            continue
        neighbours = [j for j in (i - 1, i + 1)
                      if 0 <= j < len(probs) and kinds[j] != "furniture" and paths[j][:len(path)] == path]
        if neighbours:
            smoothed[i] = (1 - weight) * probs[i] + weight * probs[neighbours].mean(axis=0)
    return smoothed


def neighbour_texts(texts: Sequence[str], follows: Sequence[bool]) -> list[str]:
    """The texts of the units just before and after each unit, joined by a space: the text member's second input.

    ``follows[i]`` says that unit i comes right after unit i-1, false at a report's start and after a gap in a run of
    labelled units. Unlike probability smoothing this crosses section boundaries: a heading's first body line and a
    passage's closing line are read with it (benchmarks/results/text_member_variants.md measured it so).
    """
    before = [texts[i - 1] if i and follows[i] else "" for i in range(len(texts))]
    after = [texts[i + 1] if i + 1 < len(texts) and follows[i + 1] else "" for i in range(len(texts))]
    return [f"{b} {a}" for b, a in zip(before, after, strict=True)]


def report_neighbours(texts: list[str], kinds: list[str]) -> list[str]:
    """Each unit's neighbours' text in a whole report; furniture (page numbers, web buttons) is skipped, as it is
    absent from the labelled runs that the text member was trained on."""
    kept = [i for i, kind in enumerate(kinds) if kind != "furniture"]
    out = [""] * len(texts)
    for i, text in zip(kept, neighbour_texts([texts[i] for i in kept], [True] * len(kept)), strict=True):
        out[i] = text
    return out
