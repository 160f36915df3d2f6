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
The pieces: serve/job_manifest.py (the state), serve/chunk_scorer.py (the worker), serve/local_engine.py and
serve/ray_engine.py (who runs the workers), serve/table_files.py (atomic writes); this module drives them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

from data.configuration import to_dict
from data.errors import ConfigError
from data.read import SUPPORTED_SUFFIXES
from data.reading_config import load_reading_config
from models.folder_layout import (
    CALIBRATION_FILE,
    CONFIG_FILE,
    MANIFEST_FILE,
    TRAINING_CONFIG_FILE,
    default_model_dir,
    require_model_folder,
)
from serve.chunk_scorer import ScorerSettings
from serve.job_manifest import Manifest
from serve.local_engine import score_locally
from serve.score_config import ScoreConfig, load_score_config
from serve.table_files import export_tables, remove_orphans, write_chunk

logger = logging.getLogger(__name__)

HASH_BLOCK = 1 << 20  # bytes read at a time while hashing: large files never sit in memory whole


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
    names = (CONFIG_FILE, CALIBRATION_FILE, TRAINING_CONFIG_FILE, MANIFEST_FILE)
    return _digest({name: (folder / name).read_text(encoding="utf-8") for name in names if (folder / name).is_file()})


def _job_identity(config: ScoreConfig, model: Path, backend: tuple[str, Path | None]) -> dict[str, str]:
    """What must not change while a job is resumed: the tables would mix two kinds of rows."""
    from models.summarizer_config import load_summarizer_config

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

    config = config or load_score_config()
    root, out = Path(archive).resolve(), Path(out).resolve()
    if not root.is_dir():
        raise ConfigError(f"{root}: archive folder not found")
    model = require_model_folder(Path(model_dir or default_model_dir()).resolve())
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
        removed = remove_orphans(out, manifest.done_chunks())
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
        export_tables(manifest, out, config.format)
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
        write_chunk(result, out, config.format)
        manifest.commit(result)
        for sha256, reason in result.failures:
            for path in manifest.paths_of(sha256):
                logger.warning("%s: %s", path, reason)
        summary.scored += result.reports.num_rows
        summary.units += result.units.num_rows
        summary.seconds = time.perf_counter() - started
        bar.update(task, advance=result.reports.num_rows + len(result.failures),
                   rate=f"{summary.units / max(summary.seconds, 1e-9):,.0f} units/s")
