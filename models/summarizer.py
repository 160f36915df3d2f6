"""Extractive section summaries from the classifier's own unit embeddings and stage probabilities.

No Chinese seq2seq model can be had offline, so the default condenses a section by choosing its most central,
on-topic and informative units, covering the stages the classifier finds there, with MMR against redundancy,
inside a character budget, and gives them back in document order with their ids and offsets. It never encodes
a unit again: the Predictor's single forward pass already gave an embedding and a probability row per unit.
A section with subsections is summarised hierarchically: each subsection first, then the section from those
summaries and its own units, so a long chapter gets a short summary drawn from all its parts.
An optional abstractive backend runs any Hugging Face seq2seq checkpoint named in the config.

This module ties the steps together; each lives in its own module: the config and budget
(``summarizer_config``), the deleting rules and finishing punctuation (``sentence_compression``), unit scores
(``unit_scoring``), the choice within the budget (``unit_selection``), which sections and units
(``section_lookup``) and the seq2seq backend (``abstractive_backend``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from data.errors import ConfigError, ModelError
from data.segment import Unit
from models.abstractive_backend import AbstractiveBackend
from models.section_lookup import common_path, find_section, has_several_parts, section_units, summary_sections
from models.sentence_compression import compress_unit, finish_sentence, hard_cut
from models.summarizer_config import Budget, SummarizerConfig, make_budget
from models.unit_scoring import position_scores, redundancy_matrix, relevance_scores, unit_norm
from models.unit_selection import join_in_order, mmr_select

if TYPE_CHECKING:
    from models.predictor import ClassifiedReport


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
        return unit_norm(heading.reshape(1, -1))[0]
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
    vectors = unit_norm(embeddings)
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

    rules = config.compression
    texts = [finish_sentence(compress_unit(unit.text, rules), rules.finished_by) for unit in body_units]
    body_vectors = vectors[body]
    relevance = relevance_scores(body_vectors, texts, None if anchor is None else body_vectors @ anchor,
                                 position_scores(len(texts)), config)
    picked = mmr_select(relevance, redundancy_matrix(body_vectors), texts, budget_chars, config,
                        None if probs is None else probs[body])
    return _extractive(path, body_units, picked or _fallback(relevance, texts, budget_chars), budget_chars, config)


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

    rules = config.compression
    row_of = {unit.unit_id: i for i, unit in enumerate(units)}
    pool = sorted(
        (row_of[uid], sentence if summary.method == "extractive"
         else finish_sentence(compress_unit(sentence, rules), rules.finished_by), part)
        for part, summary in enumerate(summaries) for uid, sentence in zip(summary.unit_ids, summary.sentences,
                                                                           strict=True))
    rows = [row for row, _, _ in pool]
    texts = [text for _, text, _ in pool]
    groups = [part for _, _, part in pool]
    position = np.array([1.0 / groups[: k + 1].count(part) for k, part in enumerate(groups)])
    vectors = unit_norm(embeddings[rows])
    relevance = relevance_scores(vectors, texts, None if anchor is None else vectors @ anchor, position, config)
    picked = mmr_select(relevance, redundancy_matrix(vectors), texts, budget_chars, config,
                        None if probs is None else probs[rows], groups)
    picked = picked or _fallback(relevance, texts, budget_chars)
    return _extractive(path, body_units, {place[units[rows[k]].unit_id]: piece for k, piece in picked.items()},
                       budget_chars, config)


def _fallback(relevance: np.ndarray, texts: Sequence[str], budget_chars: int) -> dict[int, str]:
    """When no unit and no clause fits the budget, the most relevant unit, cut."""
    best = int(np.argmax(relevance))
    return {best: hard_cut(texts[best], budget_chars)}


def _extractive(path: list[str], units: Sequence[Unit], picked: dict[int, str], budget_chars: int,
                config: SummarizerConfig) -> SectionSummary:
    """An extractive summary: the chosen sentences joined in document order."""
    return _summary(path, units, picked, budget_chars, "extractive", join_in_order(picked, config.compression))


def _summary(path: list[str], units: Sequence[Unit], picked: dict[int, str], budget_chars: int,
             method: Literal["extractive", "whole", "abstractive"], text: str) -> SectionSummary:
    """Put the chosen sentences back in document order, never rank order, with their ids and offsets."""
    order = sorted(picked)
    sentences = [picked[i] for i in order]
    return SectionSummary(
        section_path=path,
        text=text,
        unit_ids=[units[i].unit_id for i in order],
        spans=[(units[i].start, units[i].end) for i in order],
        source_units=len(units),
        sentences=sentences,
        source_chars=sum(len(unit.text) for unit in units),
        budget_chars=budget_chars,
        method=method,
    )


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
    vectors = unit_norm(np.asarray(embeddings, dtype=np.float64))
    rules = config.compression
    texts = [finish_sentence(compress_unit(unit.text, rules), rules.finished_by) for unit in units]
    relevance = relevance_scores(vectors, texts, confidence, position_scores(len(texts)), config)
    budget_chars = budget.chars(sum(len(unit.text) for unit in units))
    picked = mmr_select(relevance, redundancy_matrix(vectors), texts, budget_chars, config)
    return _extractive([name], units, picked or _fallback(relevance, texts, budget_chars), budget_chars, config)

