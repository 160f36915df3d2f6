"""``--engine local``: worker processes on this machine, each with its own ChunkScorer (one model load each)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from serve.chunk_scorer import Chunk, ChunkResult, ChunkScorer, ScorerSettings

# A global, because a process pool hands state from its initializer to its tasks no other way: one per worker
# *process*, set once by the initializer below.
_worker_scorer: ChunkScorer | None = None


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
