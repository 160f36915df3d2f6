"""The chunk worker that both engines run: a chunk of reports in, its unit and report rows out.

A local worker process and a Ray actor each build one ChunkScorer, so each loads the model once; both score the
same chunks with the same thread counts, which is why the two engines write identical tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from data.errors import ReportError
from serve.score_schema import REPORT_SCHEMA, UNIT_SCHEMA

if TYPE_CHECKING:
    from data.segment import Unit
    from models.predictor import ClassifiedReport


@dataclass(frozen=True)
class Item:
    """One distinct report content: where to read it, and every path that holds it."""

    sha256: str
    source: str
    paths: tuple[str, ...]

    @property
    def report_id(self) -> str:
        return self.sha256[:16]


@dataclass(frozen=True)
class Chunk:
    """The unit of work and of commit: a fixed set of reports, scored together into one shard per table."""

    chunk: int
    root: str
    items: tuple[Item, ...]


@dataclass
class ChunkResult:
    """What a worker sends back to the driver: a chunk's two tables, and the contents it could not read."""

    chunk: int
    units: pa.Table
    reports: pa.Table
    failures: list[tuple[str, str]]  # (sha256, reason) of the contents that could not be read

    @property
    def scored(self) -> list[str]:
        return self.reports.column("sha256").to_pylist()


@dataclass(frozen=True)
class ScorerSettings:
    """What a worker needs to build its ChunkScorer: small and picklable, so it travels to processes and actors."""

    model_dir: str
    threads: int
    summaries: bool
    device: str
    backend: str


def _unit_batch(units: list[Unit]) -> dict[str, np.ndarray]:
    """Units as the plain-dict batch that ``Predictor.__call__`` maps (object columns keep the Python strings)."""
    return {"report_id": np.array([unit.report_id for unit in units], dtype=object),
            "text": np.array([unit.text for unit in units], dtype=object),
            # fromiter, not np.array: paths of equal length would otherwise become a 2-D array
            "section_path": np.fromiter((list(unit.section_path) for unit in units), dtype=object, count=len(units)),
            "kind": np.array([unit.kind for unit in units], dtype=object)}


class ChunkScorer:
    """Loads the Predictor (and the summarizer config) once per worker, then scores chunk after chunk."""

    def __init__(self, settings: ScorerSettings) -> None:
        import transformers
        from threadpoolctl import threadpool_limits

        from models.abstractive_backend import AbstractiveBackend
        from models.predictor import Predictor
        from models.summarizer_config import load_summarizer_config

        transformers.utils.logging.disable_progress_bar()  # a "Loading weights" bar per worker would garble ours
        # The same thread counts in every engine give the same sums in the same order, hence identical tables:
        # torch's or ONNX Runtime's (the Predictor sets them) and numpy's BLAS (the summarizer's).
        self.predictor = Predictor(settings.model_dir, device=settings.device, backend=settings.backend,
                                   threads=settings.threads)
        threadpool_limits(settings.threads)
        self.summarizer = load_summarizer_config() if settings.summaries else None
        # the abstractive backend is a second model: load it once here, not once per report
        self.backend = (AbstractiveBackend(self.summarizer)
                        if self.summarizer is not None and self.summarizer.method == "abstractive" else None)

    def score(self, chunk: Chunk) -> ChunkResult:
        """Read, segment and classify a chunk's reports; unreadable ones become failures, the rest rows."""
        from data.load import load_report
        from models.predictor import ClassifiedReport

        loaded, failures = [], []
        for item in chunk.items:
            try:
                loaded.append((item, load_report(Path(chunk.root) / item.source, self.predictor.reading,
                                                 report_id=item.report_id)))
            except ReportError as err:
                failures.append((item.sha256, err.reason))
        # One Predictor call for the whole chunk: units of all its reports are length-sorted and batched together,
        # and document context is applied within each report.
        mapped = self.predictor(_unit_batch([unit for _, report in loaded for unit in report.units]))
        unit_rows, report_rows = [], []
        start = 0
        for item, report in loaded:
            stop = start + len(report.units)
            classified = ClassifiedReport(report, mapped["probs"][start:stop], mapped["embeddings"][start:stop],
                                          self.predictor.label_names, self.predictor.config.predict.min_confidence)
            start = stop
            unit_rows.extend({**row, "source": item.source} for row in classified.rows())
            report_rows.append(self._report_row(item, classified))
        return ChunkResult(chunk.chunk, pa.Table.from_pylist(unit_rows, schema=UNIT_SCHEMA),
                           pa.Table.from_pylist(report_rows, schema=REPORT_SCHEMA), failures)

    def _report_row(self, item: Item, classified: ClassifiedReport) -> dict[str, Any]:
        from models.stage_profile import stage_profile
        from models.summarizer import summarize_report

        profile = stage_profile(classified, self.predictor.config.predict.evidence_per_stage)

        def shares(values: dict[str, float]) -> list[dict[str, Any]]:
            return [{"stage": stage, "share": share} for stage, share in values.items()]

        summaries = None
        if self.summarizer is not None:
            summaries = [{"section_path": summary.section_path, "method": summary.method, "text": summary.text,
                          "unit_ids": summary.unit_ids,
                          "spans": [{"start": start, "end": end} for start, end in summary.spans]}
                         for summary in summarize_report(classified, self.summarizer, backend=self.backend)]
        return {
            "report_id": item.report_id,
            "sha256": item.sha256,
            "source": item.source,
            "paths": list(item.paths),
            "units": len(classified.report.units),
            "body_units": profile["units"],
            "stage_shares": shares(profile["overall"]),
            "section_shares": [{"section_path": section["section_path"], "units": section["units"],
                                "stage_shares": shares(section["shares"])} for section in profile["sections"]],
            "evidence": [{"stage": stage, **evidence} for stage, rows in profile["evidence"].items()
                         for evidence in rows],
            "summaries": summaries,
        }
