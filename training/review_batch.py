"""Pre-label reports and pick the units most worth a reader's time: the rows of ``chainstage label export``."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data.errors import LabelingError, ReportError
from data.read import SUPPORTED_SUFFIXES
from models.folder_layout import MANIFEST_FILE
from models.predictor import Predictor
from training.label_config import SelectionSettings, Strategy
from training.selection import informativeness, select_units


def report_files(source: Path) -> list[Path]:
    """A report file, or every report file under a folder (in name order)."""
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
        if not files:
            raise LabelingError(f"{source}: no report files ({', '.join(SUPPORTED_SUFFIXES)}) in the folder")
        return files
    if not source.is_file():
        raise LabelingError(f"{source}: no such report file or folder")
    return [source]


def model_version(folder: Path) -> str:
    """A model's name for provenance: its folder and the hash of the data it was trained on."""
    manifest = folder / MANIFEST_FILE
    if manifest.is_file():
        return f"{folder.name}@{json.loads(manifest.read_text(encoding='utf-8'))['data_sha256'][:12]}"
    return folder.name


@dataclass
class ReviewBatch:
    """The chosen rows, in review order, and what was left out on the way."""

    rows: list[dict[str, Any]]
    labelled_left_out: int
    unreadable: list[str]  # one-line errors of report files that could not be read


def review_batch(predictor: Predictor, files: list[Path], labelled: Collection[str], n: int, strategy: Strategy,
                 settings: SelectionSettings) -> ReviewBatch:
    """Up to ``n`` pre-labelled units of ``files`` in review order.

    Units already labelled and page furniture (never labelled, data/README.md) are not candidates. A file that
    cannot be read is reported and skipped, as `chainstage classify` does: one bad file must not sink a folder.
    """
    rows, probs, embeddings, skipped, unreadable = [], [], [], 0, []
    for path in files:
        try:
            classified = predictor.classify(path)
        except ReportError as err:
            unreadable.append(str(err))
            continue
        for row, prob, vector in zip(classified.rows(), classified.probs, classified.embeddings, strict=True):
            if row["unit_id"] in labelled:
                skipped += 1
            elif row["kind"] != "furniture":
                rows.append({**row, "source": str(path)})
                probs.append(prob)
                embeddings.append(vector)
    if not rows:
        where = ", ".join(map(str, files[:3])) + (" ..." if len(files) > 3 else "")
        raise LabelingError(f"{where}: no unlabelled units to review ({skipped} already labelled, "
                            f"{len(unreadable)} file(s) unreadable{': ' + unreadable[0] if unreadable else ''})")
    probs_array = np.array(probs)
    chosen = select_units(probs_array, np.array(embeddings), n, strategy, settings)
    score = informativeness(probs_array, "uncertainty" if strategy in ("uncertainty", "random") else "margin")
    model = model_version(predictor.folder)
    batch = []
    for rank, index in enumerate(chosen, start=1):
        row = rows[index]
        batch.append({
            "rank": rank, "label": row["label"], "confidence": "", "note": "", "text": row["text"],
            "section_path": row["section_path"], "model_label": row["label"], "probability": row["probability"],
            "second_label": row["second_label"], "second_probability": row["second_probability"],
            "score": float(score[index]), "model": model, "strategy": strategy, "report_id": row["report_id"],
            "source": row["source"], "kind": row["kind"], "start": row["start"], "end": row["end"],
            "unit_id": row["unit_id"],
        })
    return ReviewBatch(batch, skipped, unreadable)
