"""The layout of a chainstage model folder and where chainstage keeps its files: the one place that names them.

``training/model_folder.py`` writes a folder with these names and every reader (Predictor, the ONNX backend, the
CLI, batch scoring) finds them here, as SetFit and sentence-transformers keep their file names as constants in one
module. The folder is a plain Hugging Face folder (``config.json``, weights, tokenizer) plus the files below.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from data.errors import ModelError

CONFIG_FILE = "config.json"  # transformers' model config, with the Chinese id2label
WEIGHTS_FILE = "model.safetensors"  # the PyTorch weights (export and the torch backend need them)
TRAINING_CONFIG_FILE = "training_config.yaml"  # the resolved classifier config the folder was trained with
CALIBRATION_FILE = "calibration.json"  # temperature, and ensemble_temperature when there is a text member
MEMBER_FILE = "text_member.skops"  # the TF-IDF + logistic-regression ensemble member (models/text_member.py)
METRICS_FILE = "metrics.json"  # dev-split metrics
CONFUSION_MATRIX_FILE = "confusion_matrix.png"  # the dev-split confusion matrix
MANIFEST_FILE = "manifest.json"  # data hash, package versions, git commit
MODEL_CARD_FILE = "README.md"  # the model card
ONNX_FILES = {"fp32": "model.onnx", "int8": "model_int8.onnx"}  # written by `chainstage export`
PARITY_RECORD = "onnx_parity.json"  # how every ONNX variant compares with PyTorch (models/onnx_backend.py)

REQUIRED_FILES = (CONFIG_FILE, TRAINING_CONFIG_FILE)  # what tells a chainstage model folder from any other folder
DEFAULT_MODEL_NAME = "classifier-default"  # the folder `make run` trains under models_dir()


@dataclass(frozen=True)
class Calibration:
    """The temperatures fitted on the dev units: the encoder's, and the encoder + text member ensemble's."""

    temperature: float
    ensemble_temperature: float


def chainstage_home() -> Path:
    """Root of chainstage's downloaded and built files, so every tool, test and teammate shares one cache."""
    if home := os.environ.get("CHAINSTAGE_HOME"):
        return Path(home).expanduser()
    try:
        from platformdirs import user_cache_dir
    except ImportError:
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "chainstage"
    return Path(user_cache_dir("chainstage", appauthor=False))


def models_dir() -> Path:
    """Where built base encoders and trained model folders live, side by side."""
    return chainstage_home() / "models"


def default_model_dir() -> Path:
    """Where `make run` trains the default classifier and where commands look when no --model is given."""
    return models_dir() / DEFAULT_MODEL_NAME


def is_model_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a trained chainstage model."""
    return not _missing(folder, weights=False)


def require_model_folder(folder: Path, weights: bool = False) -> Path:
    """``folder`` if it is a chainstage model folder, else a ModelError that says what to do."""
    missing = _missing(folder, weights)
    if missing:
        raise ModelError(f"{folder}: no trained classifier here; run `make run` (or `chainstage train`) first, or pass "
                         f"--model DIR (not a chainstage model folder: no {' / '.join(missing)})")
    return folder


def _missing(folder: Path, weights: bool) -> list[str]:
    names = (*REQUIRED_FILES, WEIGHTS_FILE) if weights else REQUIRED_FILES
    return [name for name in names if not (folder / name).is_file()]


def load_calibration(folder: Path) -> Calibration:
    """The folder's temperatures; an encoder-only folder has no ensemble temperature, which then changes nothing."""
    path = folder / CALIBRATION_FILE
    try:
        calibration = json.loads(path.read_text(encoding="utf-8"))
        return Calibration(float(calibration["temperature"]), float(calibration.get("ensemble_temperature", 1.0)))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelError(f"{path}: cannot read the calibration ({type(err).__name__}: {err}); train the folder "
                         "again") from err


def save_calibration(folder: Path, temperature: float, ensemble_temperature: float | None) -> None:
    """Write the temperatures (``ensemble_temperature`` only for a folder with a text member)."""
    calibration = {"temperature": temperature}
    if ensemble_temperature is not None:
        calibration["ensemble_temperature"] = ensemble_temperature
    (folder / CALIBRATION_FILE).write_text(json.dumps(calibration), encoding="utf-8")
