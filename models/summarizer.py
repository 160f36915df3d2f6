"""Extractive section summaries from the classifier's own unit embeddings and stage probabilities.

No Chinese seq2seq model can be had offline, so the default condenses a section by choosing its most central,
on-topic and informative units, covering the stages the classifier finds there, with MMR against redundancy,
inside a character budget, and gives them back in document order with their ids and offsets. It never encodes
a unit again: the Predictor's single forward pass already gave an embedding and a probability row per unit.
A section with subsections is summarised hierarchically: each subsection first, then the section from those
summaries and its own units, so a long chapter gets a short summary drawn from all its parts.
An optional abstractive backend runs any Hugging Face seq2seq checkpoint named in the config.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from data.configuration import config_path, load_config
from data.errors import ConfigError, ModelError
from data.segment import Report, Section, Unit

if TYPE_CHECKING:
    from models.predictor import ClassifiedReport

logger = logging.getLogger(__name__)

SENTENCE_ENDERS = "。！？；!?;…"
OPENERS, CLOSERS = "“‘《（(【[「", "”’》）)】]」"


# ----------------------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class BudgetSection:
    ratio: float
    min_chars: int
    cap_chars: int


@dataclass(frozen=True)
class HierarchySection:
    enabled: bool
    coverage: float


@dataclass(frozen=True)
class WeightsSection:
    centrality: float
    heading: float
    informative: float
    position: float
    stage_coverage: float


@dataclass(frozen=True)
class ScoringSection:
    centrality: Literal["pagerank", "centroid"]
    damping: float
    mmr_lambda: float
    length_exponent: float
    weights: WeightsSection
    informative_cap: int
    informative_patterns: list[str]


@dataclass(frozen=True)
class CompressionSection:
    enumerators: bool
    enumerator_pattern: str
    filler_openings: list[str]
    trim_clauses: bool
    clause_breaks: str
    frame_clause: str
    min_clause_chars: int
    duplicate_overlap: float
    skip_introducers: bool


@dataclass(frozen=True)
class ByStageSection:
    skip_labels: list[str]


@dataclass(frozen=True)
class AbstractiveSection:
    checkpoint: str | None
    prefix: str
    max_input_tokens: int
    num_beams: int
    do_sample: bool


@dataclass(frozen=True)
class EvaluationSection:
    references: str
    report_dirs: list[str]
    base_encoder: str
    prefix: str
    max_length: int
    batch_size: int
    bootstrap_samples: int
    output_dir: str
    tune_grid: dict[str, list[float]]


@dataclass(frozen=True)
class SummarizerConfig:
    """The typed form of ``configs/summarizer.yaml``."""

    method: Literal["extractive", "abstractive"]
    seed: int
    whole_section_units: int
    budget: BudgetSection
    hierarchy: HierarchySection
    scoring: ScoringSection
    compression: CompressionSection
    by_stage: ByStageSection
    abstractive: AbstractiveSection
    evaluation: EvaluationSection

    def __post_init__(self) -> None:
        ranges = {
            "budget.ratio": (self.budget.ratio, 0.0, 1.0),
            "scoring.damping": (self.scoring.damping, 0.0, 1.0),
            "scoring.mmr_lambda": (self.scoring.mmr_lambda, 0.0, 1.0),
            "compression.duplicate_overlap": (self.compression.duplicate_overlap, 0.0, 1.0),
        }
        for key, (value, low, high) in ranges.items():
            open_low = key in ("budget.ratio", "compression.duplicate_overlap")
            if not low <= value <= high or (open_low and value == 0):
                bracket = "(" if open_low else "["
                raise ConfigError(f"config key '{key}' must be in {bracket}{low}, {high}], got {value}")
        minimums = {
            "whole_section_units": (self.whole_section_units, 0),
            "budget.min_chars": (self.budget.min_chars, 1),
            "scoring.informative_cap": (self.scoring.informative_cap, 1),
            "compression.min_clause_chars": (self.compression.min_clause_chars, 1),
            "abstractive.max_input_tokens": (self.abstractive.max_input_tokens, 1),
            "abstractive.num_beams": (self.abstractive.num_beams, 1),
            "evaluation.bootstrap_samples": (self.evaluation.bootstrap_samples, 100),
        }
        for key, (value, low) in minimums.items():
            if value < low:
                raise ConfigError(f"config key '{key}' must be >= {low}, got {value}")
        if self.budget.cap_chars < self.budget.min_chars:
            raise ConfigError(f"config key 'budget.cap_chars' must be >= budget.min_chars ({self.budget.min_chars}), "
                              f"got {self.budget.cap_chars}")
        if self.hierarchy.coverage < 0:
            raise ConfigError(f"config key 'hierarchy.coverage' must be >= 0, got {self.hierarchy.coverage}")
        if self.scoring.length_exponent < 0:
            raise ConfigError(f"config key 'scoring.length_exponent' must be >= 0, got {self.scoring.length_exponent}")
        for name, weight in asdict(self.scoring.weights).items():
            if weight < 0:
                raise ConfigError(f"config key 'scoring.weights.{name}' must be >= 0, got {weight}")
        patterns = {f"scoring.informative_patterns[{i}]": p for i, p in enumerate(self.scoring.informative_patterns)}
        patterns["compression.enumerator_pattern"] = self.compression.enumerator_pattern
        patterns["compression.frame_clause"] = self.compression.frame_clause
        for key, pattern in patterns.items():
            try:
                re.compile(pattern)
            except re.error as err:
                raise ConfigError(f"config key '{key}' is not a valid regex ({err})") from err
        if self.method == "abstractive" and not self.abstractive.checkpoint:
            raise ConfigError("config key 'abstractive.checkpoint' must name a seq2seq model folder when method is "
                              "abstractive")


def load_summarizer_config(path: str | Path | None = None, overrides: list[str] | None = None) -> SummarizerConfig:
    """Load a summarizer config (by default the shipped one) with ``--set`` overrides."""
    return load_config(SummarizerConfig, path or config_path("summarizer"), overrides)


@dataclass(frozen=True)
class Budget:
    """How long a summary may be: a share of the section's body characters between ``min_chars`` and
    ``cap_chars`` (a quarter of a 7,000-character chapter would be no summary anyone reads), or a fixed number
    of characters, which the user chose and which is therefore not capped."""

    ratio: float | None
    max_chars: int | None
    min_chars: int
    cap_chars: int

    def __post_init__(self) -> None:
        if (self.ratio is None) == (self.max_chars is None):
            raise ConfigError("give exactly one of --ratio and --max-chars")
        if self.ratio is not None and not 0 < self.ratio <= 1:
            raise ConfigError(f"--ratio must be in (0, 1], got {self.ratio}")
        if self.max_chars is not None and self.max_chars < 1:
            raise ConfigError(f"--max-chars must be >= 1, got {self.max_chars}")

    def chars(self, source_chars: int) -> int:
        """The character budget for a section whose body units hold ``source_chars`` characters."""
        if self.max_chars is not None:
            return self.max_chars
        assert self.ratio is not None
        return min(self.cap_chars, max(self.min_chars, round(self.ratio * source_chars)))


def make_budget(config: SummarizerConfig, ratio: float | None = None, max_chars: int | None = None) -> Budget:
    """The budget a user asked for, or the config's default ratio when they asked for neither."""
    if ratio is not None and max_chars is not None:
        raise ConfigError("give --ratio or --max-chars, not both")
    if ratio is None and max_chars is None:
        ratio = config.budget.ratio
    return Budget(ratio=ratio, max_chars=max_chars, min_chars=config.budget.min_chars,
                  cap_chars=config.budget.cap_chars)


# ----------------------------------------------------------------------------------------------------------------
# Output


@dataclass
class SectionSummary:
    """A section's summary and where every one of its sentences came from."""

    section_path: list[str]
    text: str
    unit_ids: list[str]
    spans: list[tuple[int, int]]
    source_units: int
    sentences: list[str] = field(default_factory=list)
    source_chars: int = 0
    budget_chars: int = 0
    method: Literal["extractive", "whole", "abstractive"] = "extractive"
    stage: str | None = None

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["spans"] = [list(span) for span in self.spans]
        return row


# ----------------------------------------------------------------------------------------------------------------
# Light compression: named rules that only ever delete text


def drop_enumerator(text: str, pattern: str) -> str:
    """Rule `enumerators`: 一是加强… -> 加强…; the enumerator orders a list, it states no fact."""
    stripped = re.sub(pattern, "", text, count=1)
    return stripped if stripped.strip() else text


def drop_filler_opening(text: str, openings: Sequence[str]) -> str:
    """Rule `filler_openings`: 同时，加强… -> 加强…; a connective that links to a sentence left out."""
    changed = True
    while changed:
        changed = False
        for opening in openings:
            if text.startswith(opening) and text[len(opening):].strip():
                text = text[len(opening):]
                changed = True
    return text


def compress_unit(text: str, rules: CompressionSection) -> str:
    """Apply the deleting rules in a fixed order; the result is always a subsequence of ``text``."""
    if rules.enumerators:
        text = drop_enumerator(text, rules.enumerator_pattern)
    return drop_filler_opening(text, rules.filler_openings)


def trim_to_clauses(text: str, max_chars: int, min_chars: int, breaks: str, frame: str = "") -> str | None:
    """Rule `trim_clauses`: the longest run of leading clauses, ended with 。, that fits in ``max_chars``.

    Cuts only at ``breaks`` outside quotes and brackets, so no name or title is split, and never right after a
    clause that only frames what follows (``frame``: 围绕…, …方面, …中), which alone would state nothing.
    None when no cut fits.
    """
    frame_regex = re.compile(frame) if frame else None
    depth = 0
    clause_start = 0
    best = None
    for i, char in enumerate(text):
        if char in OPENERS:
            depth += 1
        elif char in CLOSERS:
            depth = max(0, depth - 1)
        elif char in breaks and depth == 0:
            if i + 1 > max_chars:
                break
            framing = frame_regex is not None and frame_regex.search(text[clause_start:i]) is not None
            if i >= min_chars and not framing:
                best = text[:i] + "。"
            clause_start = i + 1
    return best


def finish_sentence(text: str) -> str:
    """A chosen unit without closing punctuation (a tail, a table cell) gets 。 so sentences do not run together."""
    text = text.strip()
    return text if not text or text[-1] in SENTENCE_ENDERS + CLOSERS else text + "。"


def join_sentences(sentences: Sequence[str]) -> str:
    """Chinese sentences join without spaces; a summary that ends on ；or ，ends on 。 instead."""
    text = "".join(sentences)
    return text[:-1] + "。" if text and text[-1] in "；;，,：:" else text


# ----------------------------------------------------------------------------------------------------------------
# Scoring


def _unit_norm(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def _scale(values: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] within the section; a constant feature carries no preference, so it becomes 0."""
    spread = values.max() - values.min() if len(values) else 0.0
    return (values - values.min()) / spread if spread > 1e-12 else np.zeros_like(values)


def pagerank(weights: np.ndarray, damping: float, iterations: int = 100, tol: float = 1e-10) -> np.ndarray:
    """PageRank by power iteration over a non-negative weight matrix (TextRank's ranking step)."""
    n = len(weights)
    rows = weights.sum(axis=1, keepdims=True)
    # a unit with no edges spreads its rank evenly, as in the original PageRank
    transition = np.where(rows > 0, weights / np.where(rows == 0, 1.0, rows), 1.0 / n)
    rank = np.full(n, 1.0 / n)
    for _ in range(iterations):
        updated = (1 - damping) / n + damping * transition.T @ rank
        if np.abs(updated - rank).sum() < tol:
            return updated
        rank = updated
    return rank


def similarity_graph(vectors: np.ndarray) -> np.ndarray:
    """Cosine similarities minus their section mean, clipped at 0: e5 cosines all sit near 0.8, so raw cosines
    would give TextRank an almost uniform graph."""
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, 0.0)
    n = len(vectors)
    mean = sims.sum() / (n * (n - 1)) if n > 1 else 0.0
    graph = np.clip(sims - mean, 0.0, None)
    np.fill_diagonal(graph, 0.0)
    return graph


def centrality_scores(vectors: np.ndarray, method: str, damping: float) -> np.ndarray:
    """How central each unit is among the section's units (vectors already L2-normalised)."""
    if method == "centroid":
        centroid = vectors.mean(axis=0)
        return vectors @ (centroid / (np.linalg.norm(centroid) or 1.0))
    return pagerank(similarity_graph(vectors), damping)


def informative_scores(texts: Sequence[str], patterns: Sequence[str], cap: int) -> np.ndarray:
    """Share of ``cap`` reached by a unit's matches of the figure / programme / result patterns."""
    compiled = [re.compile(pattern) for pattern in patterns]
    counts = [sum(len([m for m in regex.findall(text) if m]) for regex in compiled) for text in texts]
    return np.minimum(np.asarray(counts, dtype=float), cap) / cap


def position_scores(n: int) -> np.ndarray:
    """1, 1/2, 1/3 ... by place in the section: these reports open a section with its topic sentence."""
    return 1.0 / np.arange(1, n + 1)


def relevance_scores(vectors: np.ndarray, texts: Sequence[str], topic: np.ndarray | None, position: np.ndarray,
                     config: SummarizerConfig) -> np.ndarray:
    """Weighted mean of centrality, ``topic`` (similarity to the heading), informative content and ``position``
    (position_scores), each in [0, 1], divided by relative length to the power ``length_exponent`` (relevance
    per character)."""
    weights = config.scoring.weights
    features = [
        (weights.centrality, _scale(centrality_scores(vectors, config.scoring.centrality, config.scoring.damping))),
        (weights.informative, informative_scores(texts, config.scoring.informative_patterns,
                                                 config.scoring.informative_cap)),
        (weights.position, position),
    ]
    if topic is not None:
        features.append((weights.heading, _scale(topic)))
    total = sum(weight for weight, _ in features)
    if total == 0:
        return np.zeros(len(texts))
    lengths = np.asarray([len(text) for text in texts], dtype=float)
    per_length = (lengths / lengths.mean()) ** config.scoring.length_exponent
    return sum(weight * values for weight, values in features) / total / per_length


def redundancy_matrix(vectors: np.ndarray) -> np.ndarray:
    """Pairwise similarity rescaled to [0, 1] over the section's pairs, so MMR's penalty has a usable range."""
    sims = vectors @ vectors.T
    if len(vectors) < 3:
        return np.clip(sims, 0.0, 1.0)
    off = sims[~np.eye(len(vectors), dtype=bool)]
    low, high = off.min(), off.max()
    scaled = (sims - low) / (high - low) if high - low > 1e-12 else np.zeros_like(sims)
    return np.clip(scaled, 0.0, 1.0)


# ----------------------------------------------------------------------------------------------------------------
# Selection


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
        piece = _fits(finish_sentence(texts[index]), remaining, rules)
        if piece:
            chosen[index] = piece
            remaining -= len(piece)
    return chosen


def hard_cut(text: str, budget_chars: int) -> str:
    """Last resort when not even one clause fits: the first characters, marked as cut with …"""
    return text[: max(0, budget_chars - 1)] + "…"


def char_bigrams(text: str) -> set[str]:
    """Bigrams of a text's word characters (punctuation and spaces dropped), for spotting repeated facts."""
    chars = [char for char in text if char.isalnum()]
    return {a + b for a, b in zip(chars, chars[1:], strict=False)}


def is_repeat(text: str, seen: set[str], threshold: float) -> bool:
    """Rule `duplicate_overlap`: reports restate facts (overview, then section); a unit whose bigrams are mostly
    in the summary already would say the same thing twice."""
    grams = char_bigrams(text)
    return bool(grams) and len(grams & seen) / len(grams) >= threshold


def is_introducer(text: str) -> bool:
    """Rule `skip_introducers`: 主要做了以下工作： only announces the sentences after it, which a summary leaves
    out, so alone it states nothing."""
    return text.rstrip("。").endswith(("：", ":"))


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
                rules.skip_introducers and is_introducer(texts[best])):
            continue
        chosen[best] = piece
        seen |= char_bigrams(piece)
        remaining -= len(piece)
        if covered is not None and probs is not None:
            covered = np.maximum(covered, probs[best])
        if groups is not None:
            covered_groups.add(groups[best])
    return chosen


def _check_arrays(units: Sequence[Unit], embeddings: np.ndarray, probs: np.ndarray | None) -> None:
    """Mismatched arrays would silently pair units with the wrong vectors: refuse them, naming the shapes."""
    if embeddings.ndim != 2 or len(embeddings) != len(units):
        raise ValueError(f"embeddings must have one row per unit: {len(units)} units, embeddings {embeddings.shape}")
    if not np.isfinite(embeddings).all():
        raise ValueError("embeddings contain NaN or infinite values")
    if probs is not None and (probs.ndim != 2 or len(probs) != len(units)):
        raise ValueError(f"stage probabilities must have one row per unit: {len(units)} units, probs {probs.shape}")


def _anchor(units: Sequence[Unit], vectors: np.ndarray, heading: np.ndarray | None) -> np.ndarray | None:
    if heading is not None:
        return _unit_norm(heading.reshape(1, -1))[0]
    rows = [i for i, unit in enumerate(units) if unit.kind == "heading"]
    return vectors[rows[0]] if rows else None


def summarize_units(
    units: Sequence[Unit],
    embeddings: np.ndarray,
    probs: np.ndarray | None,
    budget: Budget,
    config: SummarizerConfig,
    section_path: Sequence[str] | None = None,
    heading_embedding: np.ndarray | None = None,
    backend: AbstractiveBackend | None = None,
) -> SectionSummary:
    """Summarise one section given as units with one embedding (and optionally one stage-probability row) each.

    ``units`` may include the section's heading: it serves as the topic anchor and is never chosen; so is
    page furniture. Without a heading, ``heading_embedding`` (or nothing) is the anchor. Units from subsections
    (a longer ``section_path``) make the summary hierarchical when ``hierarchy.enabled``, else one flat section.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    probs = None if probs is None else np.asarray(probs, dtype=np.float64)
    _check_arrays(units, embeddings, probs)
    vectors = _unit_norm(embeddings)
    anchor = _anchor(units, vectors, heading_embedding)
    body = [i for i, unit in enumerate(units) if unit.kind == "body"]
    if not body:
        raise ValueError(f"section {' / '.join(section_path or []) or '(untitled)'} has no body units to summarise")
    body_units = [units[i] for i in body]
    source_chars = sum(len(unit.text) for unit in body_units)
    budget_chars = budget.chars(source_chars)
    path = list(section_path) if section_path is not None else common_path(units)

    if len(body_units) <= config.whole_section_units:
        whole = {i: unit.text for i, unit in enumerate(body_units)}
        return _summary(path, body_units, whole, budget_chars, "whole", text="".join(whole.values()))
    if config.method == "abstractive" and backend is None:
        raise ConfigError("method is abstractive but no backend was loaded: load AbstractiveBackend(config) once "
                          "and pass it")
    if config.hierarchy.enabled and has_several_parts(units, path):
        return _summarize_tree(units, embeddings, probs, anchor, budget, budget_chars, config, path, backend)
    if backend is not None and config.method == "abstractive":
        text, used = backend.generate([unit.text for unit in body_units], budget_chars)
        return _summary(path, body_units, {i: body_units[i].text for i in range(used)}, budget_chars, "abstractive",
                        text=text)

    texts = [compress_unit(unit.text, config.compression) for unit in body_units]
    texts = [finish_sentence(text) for text in texts]
    body_vectors = vectors[body]
    relevance = relevance_scores(body_vectors, texts, None if anchor is None else body_vectors @ anchor,
                                 position_scores(len(texts)), config)
    picked = mmr_select(relevance, redundancy_matrix(body_vectors), texts, budget_chars, config,
                        None if probs is None else probs[body])
    return _summary(path, body_units, picked or _fallback(relevance, texts, budget_chars), budget_chars, "extractive")


def common_path(units: Sequence[Unit]) -> list[str]:
    """The longest section path shared by all ``units``: the section they make up, subsections included."""
    path = list(units[0].section_path)
    for unit in units[1:]:
        while list(unit.section_path[: len(path)]) != path:
            path.pop()
    return path


def has_several_parts(units: Sequence[Unit], path: Sequence[str]) -> bool:
    """Whether ``units`` are one section under ``path`` whose body units lie in two or more parts (its own
    units, each subsection): with one part there is nothing to balance, and summarising it twice only loses."""
    depth = len(path)
    if not all(list(unit.section_path[:depth]) == list(path) for unit in units):
        return False
    parts = {unit.section_path[depth:depth + 1] for unit in units if unit.kind == "body"}
    return len(parts) >= 2


def _summarize_tree(units: Sequence[Unit], embeddings: np.ndarray, probs: np.ndarray | None,
                    anchor: np.ndarray | None, budget: Budget, budget_chars: int, config: SummarizerConfig,
                    path: list[str], backend: AbstractiveBackend | None) -> SectionSummary:
    """A section from the summaries of its parts (its own body units are one part, each subsection another).

    Each part is summarised as if alone (recursively: a sub-subsection first), with the same budget rule, so
    its sentences are the ones its own summary shows. The section then picks among those sentences within its
    own budget, scored in the section (heading, centrality, figures, and position: a sentence's place in its
    part's summary, so every part's lead counts as a lead), with an MMR gain (``hierarchy.coverage``) for
    every part not yet represented.
    """
    depth = len(path)
    parts: dict[tuple[str, ...], list[int]] = {}
    for i, unit in enumerate(units):
        parts.setdefault(tuple(unit.section_path[depth:depth + 1]), []).append(i)
    summaries = [
        summarize_units([units[i] for i in rows], embeddings[rows], None if probs is None else probs[rows], budget,
                        config, section_path=[*path, *key], heading_embedding=anchor if not key else None,
                        backend=backend)
        for key, rows in parts.items() if any(units[i].kind == "body" for i in rows)
    ]
    body = [i for i, unit in enumerate(units) if unit.kind == "body"]
    body_units = [units[i] for i in body]
    place = {units[i].unit_id: k for k, i in enumerate(body)}
    if backend is not None and config.method == "abstractive":
        # the model reads the parts' summaries in order, as many as its input window holds
        text, used = backend.generate([summary.text for summary in summaries], budget_chars)
        read = {place[uid]: body_units[place[uid]].text for summary in summaries[:used] for uid in summary.unit_ids}
        return _summary(path, body_units, read, budget_chars, "abstractive", text=text)

    row_of = {unit.unit_id: i for i, unit in enumerate(units)}
    pool = sorted(
        (row_of[uid], sentence if summary.method == "extractive"
         else finish_sentence(compress_unit(sentence, config.compression)), part)
        for part, summary in enumerate(summaries) for uid, sentence in zip(summary.unit_ids, summary.sentences,
                                                                           strict=True))
    rows = [row for row, _, _ in pool]
    texts = [text for _, text, _ in pool]
    groups = [part for _, _, part in pool]
    position = np.array([1.0 / groups[: k + 1].count(part) for k, part in enumerate(groups)])
    vectors = _unit_norm(embeddings[rows])
    relevance = relevance_scores(vectors, texts, None if anchor is None else vectors @ anchor, position, config)
    picked = mmr_select(relevance, redundancy_matrix(vectors), texts, budget_chars, config,
                        None if probs is None else probs[rows], groups)
    picked = picked or _fallback(relevance, texts, budget_chars)
    return _summary(path, body_units, {place[units[rows[k]].unit_id]: piece for k, piece in picked.items()},
                    budget_chars, "extractive")


def _fallback(relevance: np.ndarray, texts: Sequence[str], budget_chars: int) -> dict[int, str]:
    """When no unit and no clause fits the budget, the most relevant unit, cut."""
    best = int(np.argmax(relevance))
    return {best: hard_cut(texts[best], budget_chars)}


def _summary(path: list[str], units: Sequence[Unit], picked: dict[int, str], budget_chars: int,
             method: Literal["extractive", "whole", "abstractive"], text: str | None = None) -> SectionSummary:
    """Put the chosen sentences back in document order, never rank order, with their ids and offsets."""
    order = sorted(picked)
    sentences = [picked[i] for i in order]
    return SectionSummary(
        section_path=path,
        text=join_sentences(sentences) if text is None else text,
        unit_ids=[units[i].unit_id for i in order],
        spans=[(units[i].start, units[i].end) for i in order],
        source_units=len(units),
        sentences=sentences,
        source_chars=sum(len(unit.text) for unit in units),
        budget_chars=budget_chars,
        method=method,
    )


# ----------------------------------------------------------------------------------------------------------------
# Reports


def section_units(section: Section, hierarchical: bool) -> list[Unit]:
    """The units a section's summary draws on: its own, or with its subsections' when ``hierarchical``. The root
    keeps its own either way: its summary is of the preamble before the first heading, not of the report."""
    return section.all_units() if hierarchical and section.heading is not None else list(section.units)


def summary_sections(report: Report, hierarchical: bool) -> list[Section]:
    """Sections that get a summary: the preamble before the first heading (if it has body units), then every
    headed section with body units of its own (or, when ``hierarchical``, in its subsections), in document
    order."""
    sections = [report.root, *report.sections()]
    return [section for section in sections
            if any(unit.kind == "body" for unit in section_units(section, hierarchical))]


def find_section(report: Report, query: str) -> Section:
    """The section named by ``query``: '/'-separated parts, each a prefix of a heading, matching the path's end.

    ``（三）`` or ``一、/（三）`` or a full title all work; an ambiguous or unknown query raises ConfigError.
    """
    parts = [part.strip() for part in query.split("/") if part.strip()]
    if not parts:
        raise ConfigError("--section is empty: give a heading, e.g. --section '（一）'")

    def matches(path: tuple[str, ...]) -> bool:
        tail = path[-len(parts):] if len(path) >= len(parts) else None
        return tail is not None and all(title.startswith(part) for title, part in zip(tail, parts, strict=True))

    found = [section for section in report.sections() if matches(section.path)]
    exact = [section for section in found if section.path[-1] == parts[-1]]
    found = exact if len(exact) == 1 else found
    if not found:
        raise ConfigError(f"{report.source}: no section matches --section '{query}' (see `chainstage segment` for "
                          "the headings)")
    if len(found) > 1:
        options = "; ".join(" / ".join(section.path) for section in found[:4])
        raise ConfigError(f"{report.source}: --section '{query}' matches {len(found)} sections ({options}); give "
                          "more of the path, parts separated by /")
    return found[0]


def _check_classified(classified: ClassifiedReport) -> None:
    n = len(classified.report.units)
    if len(classified.embeddings) != n or len(classified.probs) != n:
        raise ModelError(f"{classified.report.source}: the classifier output has {len(classified.embeddings)} "
                         f"embeddings and {len(classified.probs)} probability rows for {n} units")


def summarize_report(classified: ClassifiedReport, config: SummarizerConfig, budget: Budget | None = None,
                     section: str | None = None, backend: AbstractiveBackend | None = None) -> list[SectionSummary]:
    """Summarise every section (or the one named by ``section``) from the classifier's embeddings and probs."""
    _check_classified(classified)
    budget = budget or make_budget(config)
    if config.method == "abstractive" and backend is None:
        backend = AbstractiveBackend(config)  # once per call, shared by every section
    report = classified.report
    hierarchical = config.hierarchy.enabled
    # a named section brings its subsections: `--section 一、` summarises all of chapter one
    sections = list(find_section(report, section).walk()) if section else summary_sections(report, hierarchical)
    summaries = []
    for part in sections:
        units = section_units(part, hierarchical)
        if not any(unit.kind == "body" for unit in units):
            continue
        rows = [unit.index for unit in units]
        summaries.append(summarize_units(units, classified.embeddings[rows], classified.probs[rows], budget,
                                         config, section_path=list(part.path), backend=backend))
    if section and not summaries:
        raise ConfigError(f"{report.source}: section '{section}' has no body units to summarise")
    return summaries


def summarize_by_stage(classified: ClassifiedReport, config: SummarizerConfig,
                       budget: Budget | None = None) -> list[SectionSummary]:
    """A report-level summary per stage, from the body units the classifier puts in that stage.

    The stage probability of each unit stands in for heading similarity (a stage has no heading of its own).
    """
    _check_classified(classified)
    budget = budget or make_budget(config)
    report = classified.report
    top = classified.probs.argmax(axis=1)
    summaries = []
    for stage, name in enumerate(classified.label_names):
        if name in config.by_stage.skip_labels:
            continue
        rows = [unit.index for unit in report.units if unit.kind == "body" and top[unit.index] == stage]
        if not rows:
            continue
        units = [report.units[i] for i in rows]
        embeddings = classified.embeddings[rows]
        if len(units) <= config.whole_section_units:
            summary = summarize_units(units, embeddings, None, budget, config, section_path=[name])
        else:
            summary = _stage_summary(units, embeddings, classified.probs[rows, stage], budget, config, name)
        summary.stage = name
        summaries.append(summary)
    return summaries


def _stage_summary(units: list[Unit], embeddings: np.ndarray, confidence: np.ndarray, budget: Budget,
                   config: SummarizerConfig, name: str) -> SectionSummary:
    """Like a section summary, with the unit's confidence in the stage in place of heading similarity."""
    vectors = _unit_norm(np.asarray(embeddings, dtype=np.float64))
    texts = [finish_sentence(compress_unit(unit.text, config.compression)) for unit in units]
    relevance = relevance_scores(vectors, texts, confidence, position_scores(len(texts)), config)
    budget_chars = budget.chars(sum(len(unit.text) for unit in units))
    picked = mmr_select(relevance, redundancy_matrix(vectors), texts, budget_chars, config)
    return _summary([name], units, picked or _fallback(relevance, texts, budget_chars), budget_chars, "extractive")


# ----------------------------------------------------------------------------------------------------------------
# Optional abstractive backend


class AbstractiveBackend:
    """Any Hugging Face seq2seq checkpoint (a local folder), loaded once and used for every section."""

    def __init__(self, config: SummarizerConfig) -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        settings = config.abstractive
        if not settings.checkpoint:
            raise ConfigError("config key 'abstractive.checkpoint' is empty: name a seq2seq model folder")
        folder = Path(settings.checkpoint).expanduser()
        if not (folder / "config.json").is_file():
            raise ModelError(f"{folder}: not a Hugging Face model folder (no config.json); set "
                             "abstractive.checkpoint to a seq2seq checkpoint")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
            self.model = AutoModelForSeq2SeqLM.from_pretrained(str(folder))
        except (OSError, ValueError) as err:
            raise ModelError(f"{folder}: cannot load a seq2seq model ({err})") from err
        self.model.eval()
        self.settings = settings
        self.seed = config.seed
        # never feed more than the model can place: its tokenizer limit and its position table bound the window
        limits = [settings.max_input_tokens, self.tokenizer.model_max_length,
                  getattr(self.model.config, "max_position_embeddings", None)]
        self.max_input_tokens = min(int(limit) for limit in limits if limit)

    def _units_that_fit(self, texts: Sequence[str]) -> int:
        """How many leading units fit in the input window: later ones are left out, not cut mid-sentence."""
        used, tokens = 0, len(self.tokenizer(self.settings.prefix)["input_ids"])
        for text in texts:
            tokens += len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            if tokens > self.max_input_tokens and used:
                break
            used += 1
        return used

    def generate(self, texts: Sequence[str], budget_chars: int) -> tuple[str, int]:
        """The model's summary of the units (cut to the budget at a sentence end if it runs over) and how many
        leading units it read."""
        import torch

        used = self._units_that_fit(texts)
        inputs = self.tokenizer(self.settings.prefix + "".join(texts[:used]), return_tensors="pt", truncation=True,
                                max_length=self.max_input_tokens)
        torch.manual_seed(self.seed)
        with torch.inference_mode():
            # a Chinese character costs at most ~2 tokens in common vocabularies, so this bound never starves it
            output = self.model.generate(**inputs, max_new_tokens=2 * budget_chars + 2,
                                         num_beams=self.settings.num_beams, do_sample=self.settings.do_sample)
        text = self.tokenizer.decode(output[0], skip_special_tokens=True).strip()
        if len(text) > budget_chars:
            cut = max(text.rfind(char, 0, budget_chars) for char in "。！？；")
            text = text[: cut + 1] if cut >= 0 else text[:budget_chars]
        return text, used
