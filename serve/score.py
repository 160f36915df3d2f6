"""Score every report under a folder into sharded unit and report tables: resumable, exactly once, bounded memory.

How a job stays exactly-once under ``kill -9``:

1. **Scan.** Every supported file is hashed (SHA-256 of its bytes) into ``OUT/manifest.sqlite``; identical files
   share one content row, so they are scored once and each of their paths is kept.
2. **Plan.** New contents are cut into numbered chunks of ``chunk_reports`` reports, in path order, in one
   transaction. A chunk never changes after that, so a resumed job redoes exactly the chunks it had not committed.
3. **Score.** A worker (a local process or a Ray actor, each loading the model once) reads a chunk's reports and
   classifies all their units in one length-sorted pass: units are batched across reports.
4. **Commit.** The driver writes the chunk's two shards atomically (temporary file, fsync, rename), then marks the
   chunk done in one SQLite transaction. A shard whose chunk is not marked done is an orphan of a killed run: the
   next run deletes it before it starts, and scores that chunk again into the same file name.

The errors and files tables are derived from the manifest and rewritten (atomically) only when they change.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import multiprocessing
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from data.configuration import config_path, load_config, to_dict
from data.errors import ConfigError, ReportError
from data.read import SUPPORTED_SUFFIXES
from data.reading_config import load_reading_config
from serve.options import BackendOption, ModelOption

if TYPE_CHECKING:
    from models.predictor import ClassifiedReport

logger = logging.getLogger(__name__)

SCHEMA_VERSION = "2"  # 2: units.ocr
HASH_BLOCK = 1 << 20  # bytes read at a time while hashing: large files never sit in memory whole
EXPORT_BATCH = 10_000  # manifest rows per write when exporting the errors and files tables


# ---------------------------------------------------------------------------------------------------------------
# Configuration


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


# ---------------------------------------------------------------------------------------------------------------
# The output schema: stable, versioned, and documented in the README; every shard carries it, even an empty one.


def _field(name: str, kind: pa.DataType, description: str, nullable: bool = False) -> pa.Field:
    return pa.field(name, kind, nullable=nullable, metadata={"description": description})


def _list(item: pa.DataType) -> pa.DataType:
    """Lists name their item "element", as Parquet does, so that a table reads back with the schema it was given."""
    return pa.list_(pa.field("element", item))


_SHARES = _list(pa.struct([("stage", pa.string()), ("share", pa.float64())]))
_PATH = _list(pa.string())
_META = {"chainstage.schema_version": SCHEMA_VERSION}

UNIT_SCHEMA = pa.schema([
    _field("report_id", pa.string(), "first 16 hex digits of the SHA-256 of the report file's bytes"),
    _field("source", pa.string(), "path of the report file, relative to the archive (the first of identical files)"),
    _field("unit_id", pa.string(), "report_id-NNNN: the unit's position in the report"),
    _field("kind", pa.string(), "heading, body or furniture"),
    _field("section_path", _PATH, "headings above the unit, outermost first (a heading's own title is last)"),
    _field("start", pa.int64(), "offset of the unit's first character in the normalised report text"),
    _field("end", pa.int64(), "offset just past the unit's last character"),
    _field("text", pa.string(), "the unit"),
    _field("label", pa.string(), "most probable stage"),
    _field("probability", pa.float64(), "calibrated probability of label"),
    _field("second_label", pa.string(), "runner-up stage"),
    _field("second_probability", pa.float64(), "calibrated probability of second_label"),
    _field("uncertain", pa.bool_(), "probability below the model's predict.min_confidence"),
    _field("ocr", pa.bool_(), "read by OCR from a scanned page or image, so characters may be misread"),
], metadata=_META)

REPORT_SCHEMA = pa.schema([
    _field("report_id", pa.string(), "first 16 hex digits of sha256; joins the unit table"),
    _field("sha256", pa.string(), "SHA-256 of the report file's bytes"),
    _field("source", pa.string(), "first path (in sort order) holding these bytes, relative to the archive"),
    _field("paths", _PATH, "every path holding these bytes when the report was scored"),
    _field("units", pa.int64(), "units in the report"),
    _field("body_units", pa.int64(), "body units: the units that stage shares count"),
    _field("stage_shares", _SHARES, "share of body units per stage, in label order"),
    _field("section_shares", _list(pa.struct([
        ("section_path", _PATH), ("units", pa.int64()), ("stage_shares", _SHARES)])),
        "stage shares of each section's own body units, in document order"),
    _field("evidence", _list(pa.struct([
        ("stage", pa.string()), ("unit_id", pa.string()), ("text", pa.string()), ("probability", pa.float64())])),
        "the most confident body units of each stage, stage by stage"),
    _field("summaries", _list(pa.struct([
        ("section_path", _PATH), ("method", pa.string()), ("text", pa.string()), ("unit_ids", _PATH),
        ("spans", _list(pa.struct([("start", pa.int64()), ("end", pa.int64())])))])),
        "summary of each section with body units of its own (method: extractive, whole or abstractive), "
        "with the unit ids and offsets of its sentences; null when summaries are off", nullable=True),
], metadata=_META)

ERROR_SCHEMA = pa.schema([
    _field("path", pa.string(), "the file that could not be scored, relative to the archive"),
    _field("sha256", pa.string(), "SHA-256 of its bytes; null when it could not even be read", nullable=True),
    _field("reason", pa.string(), "why: empty, binary, undecodable, truncated or corrupt, no Chinese text, ..."),
], metadata=_META)

FILE_SCHEMA = pa.schema([
    _field("path", pa.string(), "every supported file found in the archive by the latest run, relative to it"),
    _field("sha256", pa.string(), "SHA-256 of its bytes; null when it could not be read", nullable=True),
    _field("report_id", pa.string(), "its row in the report table; null when it failed", nullable=True),
    _field("status", pa.string(), "scored or failed"),
], metadata=_META)


# ---------------------------------------------------------------------------------------------------------------
# Work items and the scorer that every worker runs


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


class ChunkScorer:
    """Loads the Predictor (and the summarizer config) once per worker, then scores chunk after chunk."""

    def __init__(self, settings: ScorerSettings) -> None:
        import transformers
        from threadpoolctl import threadpool_limits

        from models.predictor import Predictor
        from models.summarizer import AbstractiveBackend, load_summarizer_config

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
        from data.labeled_units import unit_context
        from data.load import load_report

        loaded, failures = [], []
        for item in chunk.items:
            try:
                loaded.append((item, load_report(Path(chunk.root) / item.source, self.predictor.reading,
                                                 report_id=item.report_id)))
            except ReportError as err:
                failures.append((item.sha256, err.reason))
        units = [unit for _, report in loaded for unit in report.units]
        # One predict call for the whole chunk: units of all its reports are length-sorted and batched together.
        probs, embeddings = self.predictor.predict([unit.text for unit in units], [unit_context(u) for u in units])
        unit_rows, report_rows = [], []
        start = 0
        for item, report in loaded:
            stop = start + len(report.units)
            classified = self.predictor.classified(report, probs[start:stop], embeddings[start:stop])
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


# ---------------------------------------------------------------------------------------------------------------
# The manifest: job state in SQLite, keyed by content hash, one transaction per step


_MANIFEST_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, sha256 TEXT, reason TEXT, seen INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS files_by_sha256 ON files (sha256);
CREATE INDEX IF NOT EXISTS files_by_seen ON files (seen);
CREATE TABLE IF NOT EXISTS contents (sha256 TEXT PRIMARY KEY, chunk INTEGER,
                                     status TEXT NOT NULL DEFAULT 'todo', reason TEXT);
CREATE INDEX IF NOT EXISTS contents_by_chunk ON contents (chunk);
CREATE TABLE IF NOT EXISTS chunks (chunk INTEGER PRIMARY KEY, done INTEGER NOT NULL DEFAULT 0);
"""

# Files seen by this run, with their content's outcome; unreadable files (sha256 NULL) count as failed.
_FILE_ROWS = """
SELECT f.path, f.sha256, CASE WHEN c.status = 'scored' THEN substr(f.sha256, 1, 16) END,
       CASE WHEN f.sha256 IS NULL OR c.status = 'failed' THEN 'failed' ELSE c.status END, COALESCE(f.reason, c.reason)
FROM files f LEFT JOIN contents c ON c.sha256 = f.sha256 WHERE f.seen = ? ORDER BY f.path
"""


class Manifest:
    """``OUT/manifest.sqlite``: files by path, contents by SHA-256 with their chunk and outcome, chunks done."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)  # explicit BEGIN/COMMIT below
        self.conn.executescript(_MANIFEST_TABLES)
        with self.transaction():
            self.run = int(self.get("runs") or 0) + 1
            self.set("runs", str(self.run))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``with manifest.transaction():`` commits on success and rolls back on any exception."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def get(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set(self, key: str, value: str) -> None:
        self.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
                          "excluded.value", (key, value))

    def check_job(self, identity: dict[str, str], out: Path) -> None:
        """A job keeps its model, format and reading settings for life: mixing two would break the tables."""
        with self.transaction():
            for key, value in identity.items():
                stored = self.get(f"job.{key}")
                if stored is None:
                    self.set(f"job.{key}", value)
                elif stored != value:
                    raise ConfigError(f"{out}: this job was started with another {key} ({stored[:40]}); resume it "
                                      f"with the same {key}, or write to a new --out")

    def record_files(self, rows: Iterable[tuple[str, str | None, str | None]], batch: int = 500) -> None:
        """Upsert (path, sha256, unreadable reason) rows as seen by this run, committing every ``batch``."""
        pending: list[tuple[str, str | None, str | None, int]] = []
        for path, sha256, reason in rows:
            pending.append((path, sha256, reason, self.run))
            if len(pending) >= batch:
                self._upsert(pending)
                pending = []
        self._upsert(pending)

    def _upsert(self, rows: list[tuple[str, str | None, str | None, int]]) -> None:
        with self.transaction():
            self.conn.executemany("INSERT INTO files (path, sha256, reason, seen) VALUES (?, ?, ?, ?) ON CONFLICT "
                                  "(path) DO UPDATE SET sha256 = excluded.sha256, reason = excluded.reason, "
                                  "seen = excluded.seen", rows)

    def plan(self, chunk_reports: int) -> None:
        """Put every new content of this run's files into numbered chunks, in path order, in one transaction."""
        with self.transaction():
            self.conn.execute("INSERT OR IGNORE INTO contents (sha256) SELECT DISTINCT sha256 FROM files "
                              "WHERE seen = ? AND sha256 IS NOT NULL", (self.run,))
            # a content still to do whose files have all gone since an earlier run leaves its chunk
            self.conn.execute("UPDATE contents SET chunk = NULL WHERE status = 'todo' AND sha256 NOT IN "
                              "(SELECT sha256 FROM files WHERE seen = ? AND sha256 IS NOT NULL)", (self.run,))
            base = self.conn.execute("SELECT COALESCE(MAX(chunk), -1) + 1 FROM chunks").fetchone()[0]
            self.conn.execute("""
                WITH ordered AS (
                    SELECT c.sha256, ROW_NUMBER() OVER (ORDER BY MIN(f.path)) - 1 AS position
                    FROM contents c JOIN files f ON f.sha256 = c.sha256
                    WHERE c.status = 'todo' AND c.chunk IS NULL AND f.seen = :run GROUP BY c.sha256)
                UPDATE contents SET chunk = :base + (SELECT position FROM ordered
                                                     WHERE ordered.sha256 = contents.sha256) / :size
                WHERE sha256 IN (SELECT sha256 FROM ordered)""", {"run": self.run, "base": base, "size": chunk_reports})
            self.conn.execute("INSERT OR IGNORE INTO chunks (chunk) SELECT DISTINCT chunk FROM contents "
                              "WHERE chunk IS NOT NULL")

    def count(self, sql: str) -> int:
        return int(self.conn.execute(sql, {"run": self.run}).fetchone()[0])

    def todo_reports(self) -> int:
        return self.count("SELECT COUNT(DISTINCT c.sha256) FROM contents c JOIN chunks k ON k.chunk = c.chunk "
                          "JOIN files f ON f.sha256 = c.sha256 WHERE k.done = 0 AND f.seen = :run")

    def scored_reports(self) -> int:
        return self.count("SELECT COUNT(DISTINCT c.sha256) FROM contents c JOIN files f ON f.sha256 = c.sha256 "
                          "WHERE c.status = 'scored' AND f.seen = :run")

    def todo_chunks(self, root: Path) -> Iterator[Chunk]:
        """Chunks not yet committed, in order; fetched a page at a time so no statement spans a commit."""
        last = -1
        while True:
            page = [row[0] for row in self.conn.execute(
                "SELECT chunk FROM chunks WHERE done = 0 AND chunk > ? ORDER BY chunk LIMIT 64", (last,))]
            if not page:
                return
            for number in page:
                rows = self.conn.execute(
                    "SELECT c.sha256, f.path FROM contents c JOIN files f ON f.sha256 = c.sha256 "
                    "WHERE c.chunk = ? AND f.seen = ? ORDER BY c.sha256, f.path", (number, self.run)).fetchall()
                paths: dict[str, list[str]] = {}
                for sha256, path in rows:
                    paths.setdefault(sha256, []).append(path)
                items = sorted((Item(sha256, group[0], tuple(group)) for sha256, group in paths.items()),
                               key=lambda item: item.source)
                yield Chunk(number, str(root), tuple(items))
            last = page[-1]

    def commit(self, result: ChunkResult) -> None:
        """Mark a chunk done and record its outcomes: the point after which its shards count."""
        with self.transaction():
            self.conn.executemany("UPDATE contents SET status = 'scored' WHERE sha256 = ?",
                                  [(sha256,) for sha256 in result.scored])
            self.conn.executemany("UPDATE contents SET status = 'failed', reason = ? WHERE sha256 = ?",
                                  [(reason, sha256) for sha256, reason in result.failures])
            self.conn.execute("UPDATE chunks SET done = 1 WHERE chunk = ?", (result.chunk,))

    def paths_of(self, sha256: str) -> list[str]:
        return [row[0] for row in self.conn.execute(
            "SELECT path FROM files WHERE sha256 = ? AND seen = ? ORDER BY path", (sha256, self.run))]

    def done_chunks(self) -> set[int]:
        return {row[0] for row in self.conn.execute("SELECT chunk FROM chunks WHERE done = 1")}

    def file_rows(self) -> Iterator[tuple[str, str | None, str | None, str, str | None]]:
        """(path, sha256, report_id, status, reason) of every file this run saw, by path."""
        yield from self.conn.execute(_FILE_ROWS, (self.run,))

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------------------------------------------------------
# Writing shards atomically


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_atomic(batches: Iterable[pa.Table], schema: pa.Schema, path: Path, fmt: str) -> None:
    """Write to a hidden temporary file, fsync, rename: readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")  # pyarrow and pandas skip dot-files when reading a folder
    with temporary.open("wb") as handle:
        if fmt == "parquet":
            with pq.ParquetWriter(handle, schema) as writer:  # the footer holds the schema, even with no rows
                for table in batches:
                    if table.num_rows:  # an empty row group would trip readers (datasets) that size batches by it
                        writer.write_table(table)
        else:
            for table in batches:
                for row in table.to_pylist():
                    handle.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_dir(path.parent)


def shard_name(chunk: int, fmt: str) -> str:
    return f"part-{chunk:06d}.{fmt}"


def _write_chunk(result: ChunkResult, out: Path, fmt: str) -> None:
    """A chunk's two shards; an empty Parquet shard still carries the schema, an empty JSONL one is left out
    (some readers, polars among them, refuse an empty JSON Lines file)."""
    for table, schema, folder in ((result.units, UNIT_SCHEMA, "units"), (result.reports, REPORT_SCHEMA, "reports")):
        if table.num_rows or fmt == "parquet":
            _write_atomic([table], schema, out / folder / shard_name(result.chunk, fmt), fmt)


_SHARD = re.compile(r"part-(\d+)\.(parquet|jsonl)")


def _remove_orphans(out: Path, done: set[int]) -> int:
    """Delete temporary files and shards of chunks the manifest does not mark done: leftovers of a killed run."""
    removed = 0
    for folder in (out / "units", out / "reports"):
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            shard = _SHARD.fullmatch(path.name)
            if path.is_file() and (path.name.startswith(".") or (shard and int(shard[1]) not in done)):
                path.unlink()
                removed += 1
    return removed


def _export_tables(manifest: Manifest, out: Path, fmt: str) -> None:
    """Rewrite the errors and files tables from the manifest, unless they would come out the same."""
    digest = hashlib.sha256()
    for row in manifest.file_rows():
        digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8"))
    errors, files = out / f"errors.{fmt}", out / f"files.{fmt}"
    if manifest.get("exported") == digest.hexdigest() and errors.is_file() and files.is_file():
        return

    def blocks() -> Iterator[list[tuple]]:
        rows = manifest.file_rows()
        while block := [row for _, row in zip(range(EXPORT_BATCH), rows, strict=False)]:
            yield block

    _write_atomic((pa.Table.from_pylist([{"path": path, "sha256": sha256, "reason": reason}
                                         for path, sha256, _, status, reason in block if status == "failed"],
                                        schema=ERROR_SCHEMA) for block in blocks()), ERROR_SCHEMA, errors, fmt)
    _write_atomic((pa.Table.from_pylist([{"path": path, "sha256": sha256, "report_id": report_id, "status": status}
                                         for path, sha256, report_id, status, _ in block], schema=FILE_SCHEMA)
                   for block in blocks()), FILE_SCHEMA, files, fmt)
    with manifest.transaction():
        manifest.set("exported", digest.hexdigest())


# ---------------------------------------------------------------------------------------------------------------
# Scanning the archive


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def archive_files(root: Path, skip: Path) -> Iterator[Path]:
    """Every non-hidden file under ``root`` in a stable order, leaving out the job's own output folder."""
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders
                               if not name.startswith(".") and (Path(folder) / name).resolve() != skip)
        yield from (Path(folder) / name for name in sorted(names) if not name.startswith("."))


def _hashed(paths: Iterable[Path], root: Path, on_file: Any) -> Iterator[tuple[str, str | None, str | None]]:
    for path in paths:
        relative = path.relative_to(root).as_posix()
        try:
            yield relative, file_sha256(path), None
        except OSError as err:
            yield relative, None, f"cannot read the file ({err.strerror or type(err).__name__})"
        on_file()


# ---------------------------------------------------------------------------------------------------------------
# The local engine: worker processes, each with its own ChunkScorer


_worker_scorer: ChunkScorer | None = None  # per worker *process*, set once by the pool initializer below


def _start_worker(settings: ScorerSettings) -> None:
    global _worker_scorer
    _worker_scorer = ChunkScorer(settings)


def _score_in_worker(chunk: Chunk) -> ChunkResult:
    assert _worker_scorer is not None
    return _worker_scorer.score(chunk)


def score_locally(settings: ScorerSettings, chunks: Iterator[Chunk], workers: int,
                  in_flight: int) -> Iterator[ChunkResult]:
    """Score chunks in ``workers`` processes (or in this one for a single worker), at most ``in_flight`` each ahead."""
    if workers == 1:
        scorer = ChunkScorer(settings)
        yield from (scorer.score(chunk) for chunk in chunks)
        return
    # spawn, not fork: torch's thread pools do not survive a fork
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                               initargs=(settings,))
    pending: set[Future[ChunkResult]] = set()
    try:
        for chunk in chunks:
            pending.add(pool.submit(_score_in_worker, chunk))
            if len(pending) >= workers * in_flight:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (future.result() for future in done)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (future.result() for future in done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------------------------------------------------
# The job


@dataclass
class JobSummary:
    """What one run did; ``failed`` counts every file of the archive that cannot be scored, this run or before."""

    out: Path
    todo: int = 0
    scored: int = 0
    skipped: int = 0
    failed: int = 0
    duplicates: int = 0
    ignored: int = 0
    units: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        head = "" if self.todo else "nothing to do, every report is already done: "
        rate = f" ({self.units:,} units, {self.units / self.seconds:,.0f} units/s)" if self.units else ""
        errors = f" (see {self.out}/errors.*)" if self.failed else ""
        extras = f"; {_count(self.duplicates, 'duplicate file')} scored once" if self.duplicates else ""
        extras += f"; {_count(self.ignored, 'file')} of other kinds ignored" if self.ignored else ""
        return (f"{head}scored {_count(self.scored, 'report')}{rate}, skipped {self.skipped} already done, "
                f"failed {_count(self.failed, 'file')}{errors}{extras}")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def _model_fingerprint(folder: Path) -> str:
    """Hash of the files that change whenever a model folder is retrained (the weights are too large to hash)."""
    names = ("config.json", "calibration.json", "training_config.yaml", "manifest.json")
    return _digest({name: (folder / name).read_text(encoding="utf-8") for name in names if (folder / name).is_file()})


def _job_identity(config: ScoreConfig, model: Path, backend: tuple[str, Path | None]) -> dict[str, str]:
    """What must not change while a job is resumed: the tables would mix two kinds of rows."""
    from models.summarizer import load_summarizer_config

    summarizer = {key: value for key, value in to_dict(load_summarizer_config()).items() if key != "evaluation"}
    name, onnx_file = backend
    return {"format": config.format, "model": _model_fingerprint(model),
            "backend": name if onnx_file is None else f"{name} ({onnx_file.name})",
            "reading config": _digest(to_dict(load_reading_config())),
            "summarizer config": _digest(summarizer if config.summaries else None)}


def _lock(out: Path) -> int:
    """One run per output folder at a time; the kernel drops the lock when the process dies, even on kill -9."""
    descriptor = os.open(out / "manifest.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as err:
        os.close(descriptor)
        raise ConfigError(f"{out}: another `chainstage score` run is writing to this folder") from err
    return descriptor


def _progress(enabled: bool) -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
        TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled)


def score_archive(archive: str | Path, out: str | Path, model_dir: str | Path | None = None,
                  config: ScoreConfig | None = None, progress: bool = True, backend: str | None = None) -> JobSummary:
    """Score every supported report under ``archive`` into ``out``; calling it again resumes, or does nothing.

    ``backend`` is torch or onnx; by default the fastest that passed the model's export parity check (on GPU
    Ray workers, torch).
    """
    from models.onnx_backend import choose_backend
    from models.predictor import default_model_dir

    config = config or load_score_config()
    root, out = Path(archive).resolve(), Path(out).resolve()
    if not root.is_dir():
        raise ConfigError(f"{root}: archive folder not found")
    model = Path(model_dir or default_model_dir()).resolve()
    if not (model / "config.json").is_file():
        raise ConfigError(f"{model}: not a model folder; train one with `chainstage train --default` or pass --model")
    on_gpu = config.engine == "ray" and config.ray.gpus_per_worker > 0
    chosen = choose_backend(model, "torch" if on_gpu else backend)  # resolved once: every worker runs the same
    out.mkdir(parents=True, exist_ok=True)
    lock = _lock(out)
    manifest = Manifest(out / "manifest.sqlite")
    try:
        manifest.check_job(_job_identity(config, model, chosen), out)
        if not (out / "score_config.yaml").is_file():
            import yaml

            resolved = {"archive": str(root), "model": str(model), **to_dict(config)}
            (out / "score_config.yaml").write_text(yaml.safe_dump(resolved, allow_unicode=True, sort_keys=False),
                                                   encoding="utf-8")
        removed = _remove_orphans(out, manifest.done_chunks())
        if removed:
            logger.info("%s: removed %d uncommitted shard files of an interrupted run", out, removed)
        summary = JobSummary(out)
        with _progress(progress) as bar:
            _scan(manifest, root, out, config, bar, summary)
            summary.skipped = manifest.scored_reports()
            summary.todo = manifest.todo_reports()
            if summary.todo:
                _score(manifest, root, out, ScorerSettings(str(model), config.threads_per_worker, config.summaries,
                                                           "cuda" if on_gpu else "cpu", chosen[0]),
                       config, bar, summary)
        _export_tables(manifest, out, config.format)
        summary.failed = manifest.count("SELECT COUNT(*) FROM files f LEFT JOIN contents c ON c.sha256 = f.sha256 "
                                        "WHERE f.seen = :run AND (f.sha256 IS NULL OR c.status = 'failed')")
    finally:
        manifest.close()
        os.close(lock)
    return summary


def _scan(manifest: Manifest, root: Path, out: Path, config: ScoreConfig, bar: Progress, summary: JobSummary) -> None:
    """Hash every supported file into the manifest, then cut the new contents into chunks."""
    task = bar.add_task("hashing", total=None, unit="files", rate="")

    def reports() -> Iterator[Path]:
        for path in archive_files(root, out):
            if path.suffix.lower() in SUPPORTED_SUFFIXES:
                yield path
            else:
                summary.ignored += 1

    manifest.record_files(_hashed(reports(), root, lambda: bar.advance(task)))
    files = manifest.count("SELECT COUNT(*) FROM files WHERE seen = :run")
    bar.update(task, total=files, completed=files)
    summary.duplicates = manifest.count("SELECT COUNT(sha256) - COUNT(DISTINCT sha256) FROM files WHERE seen = :run")
    manifest.plan(config.chunk_reports)


def _score(manifest: Manifest, root: Path, out: Path, settings: ScorerSettings, config: ScoreConfig, bar: Progress,
           summary: JobSummary) -> None:
    """Score the chunks still to do with the configured engine, committing each as it comes back."""
    task = bar.add_task("scoring", total=summary.todo, unit="reports", rate="")
    chunks = manifest.todo_chunks(root)
    if config.engine == "ray":
        try:
            from serve.ray_engine import score_on_ray
        except ImportError as err:
            raise ConfigError(f"--engine ray needs Ray: pip install 'chainstage[ray]' ({err})") from err
        results = score_on_ray(settings, chunks, config)
    else:
        results = score_locally(settings, chunks, config.workers, config.chunks_in_flight)
    started = time.perf_counter()
    for result in results:
        _write_chunk(result, out, config.format)
        manifest.commit(result)
        for sha256, reason in result.failures:
            for path in manifest.paths_of(sha256):
                logger.warning("%s: %s", path, reason)
        summary.scored += result.reports.num_rows
        summary.units += result.units.num_rows
        summary.seconds = time.perf_counter() - started
        bar.update(task, advance=result.reports.num_rows + len(result.failures),
                   rate=f"{summary.units / max(summary.seconds, 1e-9):,.0f} units/s")


# ---------------------------------------------------------------------------------------------------------------
# The command


def score_command(
    archive: Annotated[Path, typer.Argument(help="Folder of reports, searched recursively: .txt .md .docx .pdf .html "
                                                       ".png .jpg .tif")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder; run again to resume or update the job")],
    model: ModelOption = None,
    engine: Annotated[str | None, typer.Option(help="local or ray (default: engine in configs/score.yaml)")] = None,
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="parquet or jsonl (default: configs/score.yaml)")]
    = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes or Ray actors, each loads the model once")]
    = None,
    backend: BackendOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar (for cron)")] = False,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override a key of configs/score.yaml")] = None,
) -> None:
    """Score every report under a folder into sharded Parquet tables: resumable, exactly once, local or on Ray.

    Example: `chainstage score reports/ --out scored/ --engine ray --workers 2`
    """
    flags = {"engine": engine, "format": fmt, "workers": workers}
    config = load_score_config(overrides=[*(overrides or []), *(f"{key}={value}" for key, value in flags.items()
                                                                   if value is not None)])
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
    summary = score_archive(archive, out, model, config, progress=not quiet, backend=backend)
    Console().print(summary.line(), highlight=False, soft_wrap=True)
    if summary.failed:
        raise typer.Exit(code=1)

