"""The typed form of ``configs/score.yaml``: how `chainstage score` runs an archive job (engine, workers, chunks)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from data.configuration import config_path, load_config
from data.errors import ConfigError


@dataclass(frozen=True)
class RaySection:
    address: str | None
    gpus_per_worker: float


@dataclass(frozen=True)
class ScoreConfig:
    """The typed form of ``configs/score.yaml``."""

    engine: Literal["local", "ray"]
    workers: int
    threads_per_worker: int
    chunk_reports: int
    chunks_in_flight: int
    format: Literal["parquet", "jsonl"]
    summaries: bool
    ray: RaySection

    def __post_init__(self) -> None:
        for key in ("workers", "threads_per_worker", "chunk_reports", "chunks_in_flight"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{key}' must be >= 1, got {getattr(self, key)}")
        if self.ray.gpus_per_worker < 0:
            raise ConfigError(f"config key 'ray.gpus_per_worker' must be >= 0, got {self.ray.gpus_per_worker}")


def load_score_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ScoreConfig:
    """Load a scoring config (by default the shipped ``configs/score.yaml``) with ``--set`` overrides."""
    return load_config(ScoreConfig, path or config_path("score"), overrides)
