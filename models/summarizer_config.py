"""The typed form of ``configs/summarizer.yaml`` and the character budget a summary keeps to.

Every default lives in the YAML file; these dataclasses only declare and check the keys. Sentence punctuation
has its home in ``configs/reading.yaml``: the summarizer reads it from there (``CompressionSection.reading``), so
a summary ends its sentences where the segmenter ends its units.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from data.configuration import config_path, load_config
from data.errors import ConfigError
from data.reading_config import ReadingConfig, load_reading_config


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
    introducer_ends: str
    unfinished_ends: str

    @cached_property
    def reading(self) -> ReadingConfig:
        """The shipped reading config, loaded once per config: the one home of sentence ends and closers."""
        return load_reading_config()

    @property
    def finished_by(self) -> str:
        """A unit ending in one of these already ends its sentence: the segmenter's sentence ends and closers."""
        return self.reading.sentence_end + self.reading.closers


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

