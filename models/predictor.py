"""One Predictor loads a model folder once and serves every caller: CLI, summarizer, batch scoring (local or Ray).

It returns calibrated probabilities *and* the mean-pooled unit embeddings from the same forward pass, so the
summarizer never loads a model again or re-encodes a unit the classifier has already seen.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data.errors import ModelError
from data.labeled_units import heading_context, unit_context
from data.load import load_report, report_from_text
from data.reading_config import ReadingConfig, load_reading_config
from data.segment import Report
from models.classifier import encode_inputs, forward_logits, load_classifier, load_tokenizer, softmax
from models.classifier_config import load_saved_config
from models.document_context import report_neighbours, smooth_within_sections
from models.export_config import load_export_config
from models.folder_layout import default_model_dir, load_calibration, require_model_folder
from models.onnx_backend import OnnxClassifier, choose_backend, onnx_forward_logits
from models.text_member import combine, load_member, member_probabilities


@dataclass
class ClassifiedReport:
    """A segmented report with a calibrated probability row and an embedding per unit."""

    report: Report
    probs: np.ndarray
    embeddings: np.ndarray
    label_names: list[str]
    min_confidence: float

    def rows(self) -> list[dict[str, Any]]:
        """One dict per unit: section, label, calibrated probability, runner-up, uncertain and OCR flags."""
        order = np.argsort(-self.probs, axis=1)
        rows = []
        for unit, probs, ranked in zip(self.report.units, self.probs, order, strict=True):
            rows.append(self.report.unit_row(
                unit,
                label=self.label_names[ranked[0]],
                probability=float(probs[ranked[0]]),
                second_label=self.label_names[ranked[1]],
                second_probability=float(probs[ranked[1]]),
                uncertain=bool(probs[ranked[0]] < self.min_confidence),
            ))
        return rows


class Predictor:
    """Owns the tokenizer and the classifier of one model folder."""

    def __init__(self, folder: str | Path, reading: ReadingConfig | None = None, device: str = "cpu",
                 backend: str | None = None, threads: int | None = None) -> None:
        folder = require_model_folder(Path(folder))
        self.folder = folder
        self.config = load_saved_config(folder)
        calibration = load_calibration(folder)
        self.temperature = calibration.temperature
        self.ensemble_temperature = calibration.ensemble_temperature
        # a batch job's workers share the cores: `threads` caps each one (torch and ONNX Runtime alike)
        threads = threads or self.config.train.threads
        torch.set_num_threads(threads)
        # by default the fastest backend that passed the export's parity check (models/onnx_backend.py); GPUs: torch
        self.backend, onnx_file = choose_backend(folder, backend if backend or device == "cpu" else "torch")
        try:
            self.tokenizer = load_tokenizer(str(folder))
            if onnx_file is not None:
                settings = load_export_config().onnx
                self.model = OnnxClassifier(onnx_file, dataclasses.replace(settings, threads=min(settings.threads,
                                                                                                  threads)))
            else:
                self.model = load_classifier(str(folder), self.config.model.head).to(device)  # "cuda" on a GPU worker
        except (OSError, ValueError) as err:
            raise ModelError(f"{folder}: cannot load the model ({err})") from err
        self.text_member = load_member(folder)
        self.label_names = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
        self.reading = reading or load_reading_config()

    @classmethod
    def load(cls, folder: str | Path | None = None, backend: str | None = None) -> Predictor:
        """Load a model folder (by default the one `make run` trains) on a backend: torch, onnx, or the fastest."""
        return cls(folder or default_model_dir(), backend=backend)

    def predict(self, texts: list[str], contexts: list[str], neighbours: list[str],
                progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities and embeddings for units given as text, nearest heading and neighbours' text."""
        if not texts:
            return np.zeros((0, len(self.label_names))), np.zeros((0, self.model.config.hidden_size))
        encoded = encode_inputs(self.tokenizer, texts, contexts if self.config.model.context == "heading" else None,
                                self.config.model.prefix, self.config.model.max_length)
        run = onnx_forward_logits if self.backend == "onnx" else forward_logits
        logits, embeddings = run(self.model, self.tokenizer, encoded, self.config.predict.batch_size,
                                 progress=progress)
        probs = softmax(logits, self.temperature)
        if self.text_member is not None:
            member = member_probabilities(self.text_member, texts, len(self.label_names), neighbours)
            probs = combine([probs, member], self.ensemble_temperature)
        return probs, embeddings

    def classify_report(self, report: Report, progress: bool = False) -> ClassifiedReport:
        units = report.units
        probs, embeddings = self.predict([u.text for u in units], [unit_context(u) for u in units],
                                         report_neighbours([u.text for u in units], [u.kind for u in units]), progress)
        return self.classified(report, probs, embeddings)

    def classified(self, report: Report, probs: np.ndarray, embeddings: np.ndarray) -> ClassifiedReport:
        """One report's units with their probabilities, after document context (a whole report is needed for it)."""
        probs = smooth_within_sections(probs, [u.section_path for u in report.units],
                                       [u.kind for u in report.units], self.config.ensemble.neighbour_weight)
        return ClassifiedReport(report, probs, embeddings, self.label_names, self.config.predict.min_confidence)

    def classify(self, source: str | Path, progress: bool = False) -> ClassifiedReport:
        """Classify a report file, or a report given as a string (anything that is not an existing path)."""
        path = Path(source) if len(str(source)) < 4096 else None
        if path is not None and path.exists():
            report = load_report(path, self.reading)
        else:
            report = report_from_text(str(source), self.reading)
        return self.classify_report(report, progress)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Map a batch of units (columns ``report_id``, ``text``, ``section_path``, ``kind``, whole reports in reading
        order) to labels: the plain-dict batch API of Ray's ``map_batches``, with document context per report.

        Besides ``label``, ``probability`` and ``uncertain`` it returns ``probs`` (every stage's probability, after
        document context) and ``embeddings``, one row per unit: batch scoring builds its report rows and summaries
        from them without a second forward pass."""
        texts = [str(text) for text in batch["text"]]
        paths = [list(path) for path in batch["section_path"]]
        kinds = [str(kind) for kind in batch["kind"]]
        contexts = [heading_context(path, kind == "heading") for path, kind in zip(paths, kinds, strict=True)]
        reports = np.asarray(batch["report_id"])
        groups = [np.flatnonzero(reports == report) for report in dict.fromkeys(reports.tolist())]
        neighbours = [""] * len(texts)
        for rows in groups:
            beside = report_neighbours([texts[i] for i in rows], [kinds[i] for i in rows])
            for i, text in zip(rows, beside, strict=True):
                neighbours[i] = text
        probs, embeddings = self.predict(texts, contexts, neighbours)
        for rows in groups:
            probs[rows] = smooth_within_sections(probs[rows], [paths[i] for i in rows], [kinds[i] for i in rows],
                                                 self.config.ensemble.neighbour_weight)
        top = probs.argmax(axis=1)
        out = dict(batch)
        out["label"] = np.array([self.label_names[i] for i in top])
        out["probability"] = probs[np.arange(len(top)), top]
        out["uncertain"] = out["probability"] < self.config.predict.min_confidence
        out["probs"] = probs
        out["embeddings"] = embeddings
        return out
