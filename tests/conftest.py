"""Shared fixtures: the shipped reading config and the seed reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.reading_config import ReadingConfig, load_reading_config

ROOT = Path(__file__).resolve().parents[1]
SEEDS = sorted((ROOT / "seeds").glob("*.txt"))


@pytest.fixture(scope="session")
def reading_config() -> ReadingConfig:
    return load_reading_config()


@pytest.fixture(scope="session")
def seed_paths() -> list[Path]:
    return SEEDS
