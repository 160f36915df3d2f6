"""``OUT/manifest.sqlite``: the state of a scoring job in SQLite, keyed by content hash, one transaction per step.

Files by path, contents by SHA-256 with their chunk and outcome, and chunks with a done flag: a chunk's shards
count only once the manifest marks it done (serve/score_job.py tells the whole exactly-once protocol).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from data.errors import ConfigError
from serve.chunk_scorer import Chunk, ChunkResult, Item

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
