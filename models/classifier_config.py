"""The typed form of ``configs/classifier.yaml``; every default lives in the YAML file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from data.configuration import config_path, load_config
from data.errors import ConfigError
from data.labeled_units import load_labeled_files
from models.folder_layout import TRAINING_CONFIG_FILE

EVALUATION_SPLITS = ("folds", "cross_genre", "devset")  # the kinds of split that `chainstage evaluate` runs


@dataclass(frozen=True)
class DataSection:
    labeled: list[str] | str  # a single path: model folders saved before there was one file per genre
    picked_units: bool
    dev_fraction: float
    dev_split: str

    @property
    def labeled_files(self) -> list[str]:
        return [self.labeled] if isinstance(self.labeled, str) else list(self.labeled)

    def records(self) -> list[dict]:
        """The labelled units that training and evaluation read: every file's, less the picked ones if so set."""
        return load_labeled_files(self.labeled_files, picked_units=self.picked_units)


@dataclass(frozen=True)
class ModelSection:
    base: str
    head: Literal["pooler", "mean"]
    max_length: int
    prefix: str
    context: Literal["none", "heading"]
    freeze_embeddings: bool
    frozen_layers: int
    dropout: float


@dataclass(frozen=True)
class TrainSection:
    seed: int
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    epochs: int
    min_steps: int
    batch_size: int
    eval_batch_size: int
    patience: int
    class_weights: bool
    confidence_weights: dict[str, float]
    group_by_length: bool
    linear_probe: bool
    probe_cs: list[float]
    wise_ft: float
    average_from: float
    layer_decay: float
    majority_share: float
    rdrop: float
    precision: Literal["auto", "fp32", "bf16"]
    threads: int


@dataclass(frozen=True)
class AdaptSection:
    steps: int
    head_steps: int
    head_learning_rate: float
    learning_rate: float
    batch_size: int
    mask_probability: float
    report_dirs: list[str]


@dataclass(frozen=True)
class CalibrationSection:
    max_iter: int
    ece_bins: int


@dataclass(frozen=True)
class PredictSection:
    min_confidence: float
    batch_size: int
    evidence_per_stage: int


@dataclass(frozen=True)
class EnsembleSection:
    text_member: bool
    member_refit: bool
    member_neighbours: float
    neighbour_weight: float


@dataclass(frozen=True)
class EvaluateSection:
    folds: int
    devset: str | None
    splits: list[str]
    output_dir: str
    card_results: str


@dataclass(frozen=True)
class ClassifierConfig:
    data: DataSection
    model: ModelSection
    train: TrainSection
    adapt: AdaptSection
    calibration: CalibrationSection
    predict: PredictSection
    ensemble: EnsembleSection
    evaluate: EvaluateSection
    output_dir: str

    def __post_init__(self) -> None:
        if not 0 <= self.data.dev_fraction < 0.5:
            raise ConfigError(f"config key 'data.dev_fraction' must be in [0, 0.5), got {self.data.dev_fraction}")
        if self.data.dev_split not in ("units", "reports"):
            raise ConfigError(f"config key 'data.dev_split' must be units or reports, got {self.data.dev_split!r}")
        if not 0 <= self.predict.min_confidence <= 1:
            value = self.predict.min_confidence
            raise ConfigError(f"config key 'predict.min_confidence' must be in [0, 1], got {value}")
        if not 0 <= self.ensemble.neighbour_weight < 1:
            value = self.ensemble.neighbour_weight
            raise ConfigError(f"config key 'ensemble.neighbour_weight' must be in [0, 1), got {value}")
        if self.ensemble.member_neighbours < 0:
            value = self.ensemble.member_neighbours
            raise ConfigError(f"config key 'ensemble.member_neighbours' must be >= 0, got {value}")
        if not 0 < self.train.majority_share <= 1:
            raise ConfigError(f"config key 'train.majority_share' must be in (0, 1], got {self.train.majority_share}")
        if not 0 < self.train.layer_decay <= 1:
            raise ConfigError(f"config key 'train.layer_decay' must be in (0, 1], got {self.train.layer_decay}")
        if not 0 <= self.train.average_from <= 1:
            raise ConfigError(f"config key 'train.average_from' must be in [0, 1], got {self.train.average_from}")
        if any(weight < 0 for weight in self.train.confidence_weights.values()):
            value = self.train.confidence_weights
            raise ConfigError(f"config key 'train.confidence_weights' must hold weights >= 0, got {value}")
        if self.train.rdrop < 0:
            raise ConfigError(f"config key 'train.rdrop' must be >= 0, got {self.train.rdrop}")
        if not 0 < self.adapt.mask_probability < 1:
            value = self.adapt.mask_probability
            raise ConfigError(f"config key 'adapt.mask_probability' must be in (0, 1), got {value}")
        for key, value in (("adapt.steps", self.adapt.steps), ("adapt.head_steps", self.adapt.head_steps)):
            if value < 0:
                raise ConfigError(f"config key '{key}' must be >= 0, got {value}")
        if not 0 <= self.train.wise_ft <= 1:
            raise ConfigError(f"config key 'train.wise_ft' must be in [0, 1], got {self.train.wise_ft}")
        for key, value in (("model.max_length", self.model.max_length), ("train.epochs", self.train.epochs),
                           ("train.batch_size", self.train.batch_size), ("adapt.batch_size", self.adapt.batch_size)):
            if value < 1:
                raise ConfigError(f"config key '{key}' must be >= 1, got {value}")
        if self.model.frozen_layers < 0:
            raise ConfigError(f"config key 'model.frozen_layers' must be >= 0, got {self.model.frozen_layers}")
        if "folds" not in self.evaluate.splits or not set(self.evaluate.splits) <= set(EVALUATION_SPLITS):
            raise ConfigError(f"config key 'evaluate.splits' must list folds and any of cross_genre, devset, got "
                              f"{self.evaluate.splits}")
        if self.train.learning_rate <= 0:
            raise ConfigError(f"config key 'train.learning_rate' must be > 0, got {self.train.learning_rate}")


def load_classifier_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ClassifierConfig:
    """Load a classifier config (by default the shipped one) with ``--set`` overrides."""
    return load_config(ClassifierConfig, path or config_path("classifier"), overrides)


def load_saved_config(folder: str | Path) -> ClassifierConfig:
    """The config a model folder was trained with; keys added to the project since then take the shipped value."""
    return load_config(ClassifierConfig, Path(folder) / TRAINING_CONFIG_FILE, defaults=config_path("classifier"))
