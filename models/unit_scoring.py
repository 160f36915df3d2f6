"""What each unit of a section is worth to its summary: relevance and pairwise redundancy.

Relevance mixes centrality (TextRank's PageRank over the unit embeddings, or cosine to the centroid), similarity
to the heading, informative content (figures, named programmes, results) and position, each scaled to [0, 1];
redundancy is the pairwise similarity MMR penalises. Every weight and pattern comes from ``scoring`` in
``configs/summarizer.yaml``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from models.summarizer_config import SummarizerConfig


def unit_norm(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero), so dot products are cosines."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def _scale(values: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] within the section; a constant feature carries no preference, so it becomes 0."""
    spread = values.max() - values.min() if len(values) else 0.0
    return (values - values.min()) / spread if spread > 1e-12 else np.zeros_like(values)


def pagerank(weights: np.ndarray, damping: float, iterations: int = 100, tol: float = 1e-10) -> np.ndarray:
    """PageRank by power iteration over a non-negative weight matrix (TextRank's ranking step)."""
    n = len(weights)
    rows = weights.sum(axis=1, keepdims=True)
    # a unit with no edges spreads its rank evenly, as in the original PageRank
    transition = np.where(rows > 0, weights / np.where(rows == 0, 1.0, rows), 1.0 / n)
    rank = np.full(n, 1.0 / n)
    for _ in range(iterations):
        updated = (1 - damping) / n + damping * transition.T @ rank
        if np.abs(updated - rank).sum() < tol:
            return updated
        rank = updated
    return rank


def similarity_graph(vectors: np.ndarray) -> np.ndarray:
    """Cosine similarities minus their section mean, clipped at 0: e5 cosines all sit near 0.8, so raw cosines
    would give TextRank an almost uniform graph."""
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, 0.0)
    n = len(vectors)
    mean = sims.sum() / (n * (n - 1)) if n > 1 else 0.0
    graph = np.clip(sims - mean, 0.0, None)
    np.fill_diagonal(graph, 0.0)
    return graph


def centrality_scores(vectors: np.ndarray, method: str, damping: float) -> np.ndarray:
    """How central each unit is among the section's units (vectors already L2-normalised)."""
    if method == "centroid":
        centroid = vectors.mean(axis=0)
        return vectors @ (centroid / (np.linalg.norm(centroid) or 1.0))
    return pagerank(similarity_graph(vectors), damping)


def informative_scores(texts: Sequence[str], patterns: Sequence[str], cap: int) -> np.ndarray:
    """Share of ``cap`` reached by a unit's matches of the figure / programme / result patterns."""
    compiled = [re.compile(pattern) for pattern in patterns]
    counts = [sum(len([m for m in regex.findall(text) if m]) for regex in compiled) for text in texts]
    return np.minimum(np.asarray(counts, dtype=float), cap) / cap


def position_scores(n: int) -> np.ndarray:
    """1, 1/2, 1/3 ... by place in the section: these reports open a section with its topic sentence."""
    return 1.0 / np.arange(1, n + 1)


def relevance_scores(vectors: np.ndarray, texts: Sequence[str], topic: np.ndarray | None, position: np.ndarray,
                     config: SummarizerConfig) -> np.ndarray:
    """Weighted mean of centrality, ``topic`` (similarity to the heading), informative content and ``position``
    (position_scores), each in [0, 1], divided by relative length to the power ``length_exponent`` (relevance
    per character)."""
    weights = config.scoring.weights
    features = [
        (weights.centrality, _scale(centrality_scores(vectors, config.scoring.centrality, config.scoring.damping))),
        (weights.informative, informative_scores(texts, config.scoring.informative_patterns,
                                                 config.scoring.informative_cap)),
        (weights.position, position),
    ]
    if topic is not None:
        features.append((weights.heading, _scale(topic)))
    total = sum(weight for weight, _ in features)
    if total == 0:
        return np.zeros(len(texts))
    lengths = np.asarray([len(text) for text in texts], dtype=float)
    per_length = (lengths / lengths.mean()) ** config.scoring.length_exponent
    return sum(weight * values for weight, values in features) / total / per_length


def redundancy_matrix(vectors: np.ndarray) -> np.ndarray:
    """Pairwise similarity rescaled to [0, 1] over the section's pairs, so MMR's penalty has a usable range."""
    sims = vectors @ vectors.T
    if len(vectors) < 3:
        return np.clip(sims, 0.0, 1.0)
    off = sims[~np.eye(len(vectors), dtype=bool)]
    low, high = off.min(), off.max()
    scaled = (sims - low) / (high - low) if high - low > 1e-12 else np.zeros_like(sims)
    return np.clip(scaled, 0.0, 1.0)

