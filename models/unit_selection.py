"""Which units go into a summary, and in what form, within its character budget.

The summarizer picks by greedy MMR (relevance against redundancy, with gains for stages and subsections not yet
covered); the evaluation's baselines walk a fixed order through the same ``fill_budget`` rule. Either way a unit
goes in whole or trimmed to its leading clauses, never as a repeat of the summary so far or as a mere
introducer (``compression`` in ``configs/summarizer.yaml``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from models.sentence_compression import FULL_STOP, finish_sentence, join_sentences, trim_to_clauses

if TYPE_CHECKING:
    from models.summarizer_config import CompressionSection, SummarizerConfig


def _fits(text: str, remaining: int, rules: CompressionSection) -> str | None:
    """The unit as it goes into the summary: whole if it fits, else its leading clauses, else None."""
    if len(text) <= remaining:
        return text
    if rules.trim_clauses:
        return trim_to_clauses(text, remaining, rules.min_clause_chars, rules.clause_breaks, rules.frame_clause)
    return None


def fill_budget(ranked: Sequence[int], texts: Sequence[str], budget_chars: int,
                rules: CompressionSection) -> dict[int, str]:
    """Walk units in a fixed preference order and keep each that fits (whole or trimmed): baselines share this."""
    chosen: dict[int, str] = {}
    remaining = budget_chars
    for index in ranked:
        piece = _fits(finish_sentence(texts[index], rules.finished_by), remaining, rules)
        if piece:
            chosen[index] = piece
            remaining -= len(piece)
    return chosen


def join_in_order(chosen: dict[int, str], rules: CompressionSection) -> str:
    """The chosen pieces as one summary in document order (their index order), never rank order."""
    return join_sentences([chosen[i] for i in sorted(chosen)], rules.unfinished_ends)


def char_bigrams(text: str) -> set[str]:
    """Bigrams of a text's word characters (punctuation and spaces dropped), for spotting repeated facts."""
    chars = [char for char in text if char.isalnum()]
    return {a + b for a, b in zip(chars, chars[1:], strict=False)}


def is_repeat(text: str, seen: set[str], threshold: float) -> bool:
    """Rule `duplicate_overlap`: reports restate facts (overview, then section); a unit whose bigrams are mostly
    in the summary already would say the same thing twice."""
    grams = char_bigrams(text)
    return bool(grams) and len(grams & seen) / len(grams) >= threshold


def is_introducer(text: str, ends: str) -> bool:
    """Rule `skip_introducers`: 主要做了以下工作： only announces the sentences after it, which a summary leaves
    out, so alone it states nothing; ``ends`` (``introducer_ends``) are the characters that announce."""
    core = text.rstrip(FULL_STOP)  # finish_sentence may have put a 。 after the ：
    return bool(core) and core[-1] in ends


def mmr_select(relevance: np.ndarray, redundancy: np.ndarray, texts: Sequence[str], budget_chars: int,
               config: SummarizerConfig, probs: np.ndarray | None = None,
               groups: Sequence[int] | None = None) -> dict[int, str]:
    """Greedy MMR inside the budget; with stage probabilities, a unit also gains for stage mass not yet covered,
    and with ``groups`` (the subsection each unit comes from), for a subsection not yet in the summary.

    Ties go to the earlier unit, so the same input always gives the same summary.
    """
    lam = config.scoring.mmr_lambda
    rules = config.compression
    target = probs.mean(axis=0) if probs is not None and len(probs) else None
    covered = np.zeros(probs.shape[1]) if target is not None else None
    covered_groups: set[int] = set()
    chosen: dict[int, str] = {}
    seen: set[str] = set()
    remaining = budget_chars
    candidates = list(range(len(texts)))
    while candidates and remaining > 0:
        scores = []
        for i in candidates:
            penalty = max((redundancy[i, j] for j in chosen), default=0.0)
            score = lam * relevance[i] - (1 - lam) * penalty
            if target is not None and covered is not None and probs is not None:
                score += config.scoring.weights.stage_coverage * float(target @ np.clip(probs[i] - covered, 0, None))
            if groups is not None and groups[i] not in covered_groups:
                score += config.hierarchy.coverage
            scores.append(score)
        best = candidates[int(np.argmax(scores))]  # argmax returns the first maximum: the earliest unit
        candidates.remove(best)
        piece = _fits(texts[best], remaining, rules)
        if not piece or is_repeat(texts[best], seen, rules.duplicate_overlap) or (
                rules.skip_introducers and is_introducer(texts[best], rules.introducer_ends)):
            continue
        chosen[best] = piece
        seen |= char_bigrams(piece)
        remaining -= len(piece)
        if covered is not None and probs is not None:
            covered = np.maximum(covered, probs[best])
        if groups is not None:
            covered_groups.add(groups[best])
    return chosen

