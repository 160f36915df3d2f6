"""The job's table files: a chunk's shards, and the errors and files tables, each written atomically; and the
removal of shards that a killed run wrote but never committed."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from serve.chunk_scorer import ChunkResult
from serve.job_manifest import Manifest
from serve.score_schema import ERROR_SCHEMA, FILE_SCHEMA, REPORT_SCHEMA, UNIT_SCHEMA

EXPORT_BATCH = 10_000  # manifest rows per write when exporting the errors and files tables


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


def write_chunk(result: ChunkResult, out: Path, fmt: str) -> None:
    """A chunk's two shards; an empty Parquet shard still carries the schema, an empty JSONL one is left out
    (some readers, polars among them, refuse an empty JSON Lines file)."""
    for table, schema, folder in ((result.units, UNIT_SCHEMA, "units"), (result.reports, REPORT_SCHEMA, "reports")):
        if table.num_rows or fmt == "parquet":
            _write_atomic([table], schema, out / folder / shard_name(result.chunk, fmt), fmt)


_SHARD = re.compile(r"part-(\d+)\.(parquet|jsonl)")


def remove_orphans(out: Path, done: set[int]) -> int:
    """Delete temporary files and shards of chunks the manifest does not mark done: leftovers of a killed run."""
    removed = 0
    for folder in (out / "units", out / "reports"):
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            shard = _SHARD.fullmatch(path.name)
            if path.is_file() and (path.name.startswith(".") or (shard and int(shard[1]) not in done)):
                path.unlink()
                removed += 1
    return removed


def export_tables(manifest: Manifest, out: Path, fmt: str) -> None:
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
