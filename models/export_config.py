"""The typed form of ``configs/export.yaml``; every default lives in the YAML file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from data.configuration import CONFIG_DIR, config_path, load_config
from data.errors import ConfigError

ATTENTION_OPS = ("MultiHeadAttention", "Attention")


def repository_path(name: str) -> Path:
    """A units file named in the config; a relative path is read from the repository root, not the working dir."""
    path = Path(name)
    return path if path.is_absolute() else CONFIG_DIR.parent / path


@dataclass(frozen=True)
class TrimSection:
    base_encoder: bool
    ranges: list[str]


@dataclass(frozen=True)
class OnnxSection:
    opset: int
    optimize: bool
    fusions_off: list[str]
    attention_op: str
    session_fusions_off: list[str]
    int8_per_channel: bool
    int8_reduce_range: bool
    int8_exclude: list[str]
    int8_smooth_alpha: float | None
    int8_calibration_units: str
    threads: int
    batch_slices: bool
    spinning: bool
    default_model: bool

    def calibration_path(self) -> Path:
        return repository_path(self.int8_calibration_units)


@dataclass(frozen=True)
class ParitySection:
    units: str
    min_label_agreement: float
    max_macro_f1_drop: float
    batch_size: int

    def units_path(self) -> Path:
        return repository_path(self.units)


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
        if self.onnx.attention_op not in ATTENTION_OPS:
            raise ConfigError(f"config key 'onnx.attention_op' must be one of {', '.join(ATTENTION_OPS)}, "
                              f"got {self.onnx.attention_op!r}")
        alpha = self.onnx.int8_smooth_alpha
        if alpha is not None and not 0 <= alpha <= 1:
            raise ConfigError(f"config key 'onnx.int8_smooth_alpha' must be in [0, 1] or null, got {alpha}")
        if not 9 <= self.onnx.opset <= 20:
            raise ConfigError(f"config key 'onnx.opset' must be in [9, 20], got {self.onnx.opset}")


def load_export_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExportConfig:
    """Load the export settings (by default the shipped ``configs/export.yaml``) with ``--set`` overrides."""
    return load_config(ExportConfig, path or config_path("export"), overrides)
