"""The typed form of ``configs/label.yaml``: review batches, their import, and the simulated labelling loop."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from data.configuration import config_path, load_config
from data.errors import ConfigError
from data.label_batches import BatchFormat

Strategy = Literal["uncertainty", "margin", "diverse", "random"]
Confidence = Literal["high", "medium", "low"]


@dataclass(frozen=True)
class ExportSection:
    n: int
    strategy: Strategy
    format: BatchFormat


@dataclass(frozen=True)
class SelectionSettings:
    diversity_weight: float
    duplicate_distance: float
    candidates_factor: int
    seed: int


@dataclass(frozen=True)
class IntakeSection:
    into: str
    default_confidence: Confidence


@dataclass(frozen=True)
class SimulateSection:
    seed_file: str
    pool_file: str
    held_out: list[str]
    batch_size: int
    rounds: int
    strategies: list[Strategy]
    random_seeds: list[int]
    probe_c: float
    goal_fraction: float
    table: str
    figure: str


@dataclass(frozen=True)
class LabelConfig:
    export: ExportSection
    selection: SelectionSettings
    intake: IntakeSection
    simulate: SimulateSection

    def __post_init__(self) -> None:
        checks = (("export.n", self.export.n >= 1), ("simulate.batch_size", self.simulate.batch_size >= 1),
                  ("simulate.rounds", self.simulate.rounds >= 1),
                  ("selection.candidates_factor", self.selection.candidates_factor >= 1),
                  ("selection.diversity_weight", 0 <= self.selection.diversity_weight <= 1),
                  ("selection.duplicate_distance", 0 <= self.selection.duplicate_distance <= 1),
                  ("simulate.goal_fraction", 0 < self.simulate.goal_fraction <= 1),
                  ("simulate.probe_c", self.simulate.probe_c > 0))
        for key, ok in checks:
            if not ok:
                raise ConfigError(f"config key '{key}' is out of range (its comment in configs/label.yaml says how)")


def load_label_config(path: str | Path | None = None, overrides: list[str] | None = None) -> LabelConfig:
    """Load the labelling config (by default the shipped one) with ``--set`` overrides."""
    return load_config(LabelConfig, path or config_path("label"), overrides)
