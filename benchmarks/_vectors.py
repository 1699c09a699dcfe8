"""Synthetic embeddings for the search benchmarks: unit vectors in clusters, as embeddings are."""

from __future__ import annotations

import numpy as np


def clustered_unit_vectors(n: int, dim: int, clusters: int, seed: int, block: int = 100_000, centre_seed: int | None = None):
    """``n`` unit vectors of ``dim`` in blocks: each a random cluster centre (standard normal) plus
    noise of 0.6 per dimension, normalised (about 0.86 cosine to its centre); deterministic in
    ``seed``. The centres are drawn from ``seed``'s stream first, or from ``centre_seed`` when given,
    so that two calls with one ``centre_seed`` draw points of the same clusters (queries near the rows)."""
    rng = np.random.default_rng(seed)
    centres = (rng if centre_seed is None else np.random.default_rng(centre_seed)).standard_normal((clusters, dim)).astype(np.float32)
    for a in range(0, n, block):
        m = min(block, n - a)
        x = centres[rng.integers(0, clusters, m)] + 0.6 * rng.standard_normal((m, dim)).astype(np.float32)
        yield (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
