"""The typed form of ``configs/export.yaml``; every default lives in the YAML file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from data.configuration import CONFIG_DIR, config_path, load_config
from data.errors import ConfigError


@dataclass(frozen=True)
class TrimSection:
    base_encoder: bool
    ranges: list[str]


@dataclass(frozen=True)
class OnnxSection:
    opset: int
    optimize: bool
    int8_per_channel: bool
    int8_reduce_range: bool
    int8_exclude: list[str]
    threads: int
    spinning: bool
    default_model: bool


@dataclass(frozen=True)
class ParitySection:
    units: str
    min_label_agreement: float
    max_macro_f1_drop: float
    batch_size: int

    def units_path(self) -> Path:
        """The labelled units file; a relative path is read from the repository root, not the working directory."""
        path = Path(self.units)
        return path if path.is_absolute() else CONFIG_DIR.parent / path


@dataclass(frozen=True)
class ExportConfig:
    trim: TrimSection
    onnx: OnnxSection
    parity: ParitySection

    def __post_init__(self) -> None:
        for key, value in (("parity.min_label_agreement", self.parity.min_label_agreement),
                           ("parity.max_macro_f1_drop", self.parity.max_macro_f1_drop)):
            if not 0 <= value <= 1:
                raise ConfigError(f"config key '{key}' must be in [0, 1], got {value}")
        for key, value in (("onnx.threads", self.onnx.threads), ("parity.batch_size", self.parity.batch_size)):
            if value < 1:
                raise ConfigError(f"config key '{key}' must be >= 1, got {value}")
        if not 9 <= self.onnx.opset <= 20:
            raise ConfigError(f"config key 'onnx.opset' must be in [9, 20], got {self.onnx.opset}")


def load_export_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExportConfig:
    """Load the export settings (by default the shipped ``configs/export.yaml``) with ``--set`` overrides."""
    return load_config(ExportConfig, path or config_path("export"), overrides)
