"""Which unlabelled units teach the model most: uncertainty or margin, spread out so a batch never repeats itself.

Uncertainty alone picks runs of near-identical sentences (a report restates its targets in every chapter), so
every strategy but ``random`` trades a unit's uncertainty against its distance to the units already picked.
``uncertainty`` and ``margin`` pick greedily, one unit at a time, by a weighted sum of the two (maximal marginal
relevance, Carbonell & Goldstein 1998); ``diverse`` clusters the most uncertain units with margin-weighted
k-means and keeps the unit nearest each centre (Zhdanov 2019, "Diverse mini-batch active learning").
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from models.unit_scoring import unit_norm
from training.label_config import SelectionSettings, Strategy


def informativeness(probs: np.ndarray, strategy: Strategy) -> np.ndarray:
    """How unsure the model is of each unit, in [0, 1]: least confidence, or one minus the top-two margin."""
    top = np.sort(probs, axis=1)
    if strategy == "uncertainty":
        return 1.0 - top[:, -1]
    return 1.0 - (top[:, -1] - top[:, -2])


def _scaled(values: np.ndarray) -> np.ndarray:
    """Divide by the largest value, so that uncertainty and distance weigh on the same 0-1 scale."""
    top = values.max() if len(values) else 0.0
    return values / top if top > 0 else np.zeros_like(values)


def _greedy(score: np.ndarray, vectors: np.ndarray, n: int, settings: SelectionSettings) -> list[int]:
    """Maximal marginal relevance: each pick maximises (1 - w) uncertainty + w distance to the nearest pick."""
    weight = settings.diversity_weight
    nearest = np.full(len(score), np.inf)  # cosine distance to the nearest unit picked so far
    available = np.ones(len(score), dtype=bool)
    picked: list[int] = []
    while len(picked) < n and available.any():
        if picked:
            distance = _scaled(np.where(available, nearest, 0.0))
            value = (1 - weight) * _scaled(score) + weight * distance
        else:
            value = score.astype(float)
        value = np.where(available, value, -np.inf)
        best = int(np.argmax(value))
        picked.append(best)
        nearest = np.minimum(nearest, 1.0 - vectors @ vectors[best])
        # near-copies of a pick never join the batch, however unsure the model is of them ...
        available &= nearest > settings.duplicate_distance
    # ... unless nothing else is left: then the batch takes what remains, most uncertain first
    order = np.argsort(-score, kind="stable")
    rest = order[~np.isin(order, picked)]
    return picked + [int(i) for i in rest[: n - len(picked)]]


def _clustered(score: np.ndarray, vectors: np.ndarray, n: int, settings: SelectionSettings) -> list[int]:
    """Margin-weighted k-means over the most uncertain units; the unit nearest each centre, most uncertain first."""
    candidates = np.argsort(-score, kind="stable")[: n * settings.candidates_factor]
    if len(candidates) <= n:
        return [int(i) for i in candidates]
    kmeans = KMeans(n_clusters=n, n_init=1, random_state=settings.seed)
    assigned = kmeans.fit_predict(vectors[candidates], sample_weight=score[candidates] + 1e-6)
    picked = []
    for cluster in range(n):
        members = candidates[assigned == cluster]
        if len(members):
            distance = np.linalg.norm(vectors[members] - kmeans.cluster_centers_[cluster], axis=1)
            picked.append(int(members[np.argmin(distance)]))
    return sorted(picked, key=lambda i: -score[i])


def select_units(probs: np.ndarray, embeddings: np.ndarray, n: int, strategy: Strategy,
                 settings: SelectionSettings) -> list[int]:
    """Indices of up to ``n`` units to label next, in review order (the most useful first)."""
    if strategy == "random":
        return [int(i) for i in np.random.default_rng(settings.seed).permutation(len(probs))[:n]]
    score = informativeness(probs, "margin" if strategy == "diverse" else strategy)
    vectors = unit_norm(np.asarray(embeddings, dtype=np.float64))
    if strategy == "diverse":
        return _clustered(score, vectors, n, settings)
    return _greedy(score, vectors, n, settings)
