"""``--engine ray``: the same ChunkScorer as the local engine, run by a Ray Data pipeline over an actor pool.

This is the only module that imports Ray (its API moves). The driver keeps the manifest and writes every shard,
so the exactly-once machinery of ``serve/score_job.py`` is the same for both engines; Ray only scores chunks:

    to-do chunks -> from_items -> map_batches(RayChunkScorer, ActorPoolStrategy(size=workers)) -> driver commits

Each actor builds one ChunkScorer, so it loads the model once, and scores one chunk per call: a chunk is the same
set of reports in the same order as on the local engine, which is why both engines write identical tables.
The to-do list (hashes and paths, never report text) goes in as items rather than as a file that Ray reads: a read
task needs a CPU of its own, and with every CPU held by an actor it would wait for ever.
The archive must be visible at the same path on every node (a shared volume on a cluster).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from dataclasses import asdict

import pyarrow as pa
import ray

from serve.chunk_scorer import Chunk, ChunkResult, ChunkScorer, Item, ScorerSettings
from serve.score_config import ScoreConfig

MAX_BLOCKS_PER_ACTOR = 64  # enough blocks that no actor idles while another still has a queue


class RayChunkScorer:
    """Ray's callable class: one ChunkScorer (one Predictor) per actor, then chunk after chunk."""

    def __init__(self, settings: ScorerSettings) -> None:
        self.scorer = ChunkScorer(settings)

    def __call__(self, batch: pa.Table) -> pa.Table:
        results = []
        for row in batch.to_pylist():
            items = tuple(Item(item["sha256"], item["source"], tuple(item["paths"])) for item in row["items"])
            results.append(self.scorer.score(Chunk(row["chunk"], row["root"], items)))
        # a ChunkResult holds two Arrow tables of different schemas: it travels to the driver pickled
        return pa.table({"chunk": pa.array([result.chunk for result in results], pa.int64()),
                         "result": pa.array([pickle.dumps(result) for result in results], pa.binary())})


def score_on_ray(settings: ScorerSettings, chunks: Iterator[Chunk], config: ScoreConfig) -> Iterator[ChunkResult]:
    """Yield a ChunkResult per chunk as Ray's actors finish them (in any order)."""
    started = not ray.is_initialized()
    if started:
        # address None: $RAY_ADDRESS when set, else a new local Ray using every core
        ray.init(address=config.ray.address, logging_level=logging.WARNING, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False  # the job draws its own bar
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # execution plans and tuning tips, at every run
    items = [{"chunk": chunk.chunk, "root": chunk.root, "items": [asdict(item) for item in chunk.items]}
             for chunk in chunks]
    try:
        if not items:
            return
        blocks = min(len(items), MAX_BLOCKS_PER_ACTOR * config.workers)
        dataset = ray.data.from_items(items, override_num_blocks=blocks)
        del items  # Ray holds them now, in its object store
        scored = dataset.map_batches(
            RayChunkScorer,
            fn_constructor_args=(settings,),
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=config.workers),
            num_cpus=config.threads_per_worker,
            num_gpus=config.ray.gpus_per_worker or None,
        )
        for batch in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
            for payload in batch.column("result").to_pylist():
                yield pickle.loads(payload)
    finally:
        if started:
            ray.shutdown()
