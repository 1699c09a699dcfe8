"""A faiss IVF-PQ index searched from disk, its candidates re-ranked on their full vectors: search of
10^7 rows and more in a process that holds only the index's codes.

``build_pq_index(DIR)`` (``skclap index DIR --store faiss-pq``) writes ``DIR/index-ivfpq.faiss``:
an inverted file over about ``sqrt(rows)`` k-means partitions whose lists hold each row's product-
quantised residual (8-bit codes of 4-dimension sub-vectors: 64 bytes a 256-d row), trained on a
sample of the rows. :class:`PQIndex` memory-maps it; a query scans ``nprobe`` partitions for
``refine`` times ``k`` candidates, reads their full vectors from the collection's ``.npy`` shards
(:class:`skclap.rows.ShardRows`, positional reads, no mapping) and ranks them exactly. Allowed rows
(a metadata filter's) become a faiss ID selector inside the scan; :class:`skclap.retrieval.Collection`
searches a filter that leaves at most :data:`EXACT_BELOW` rows exactly instead. faiss is an optional
dependency (``pip install faiss-cpu``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .fileio import write_atomic
from .layout import PQ_INDEX_NAME, read_meta
from .rows import ShardRows

__all__ = ["EXACT_BELOW", "NPROBE", "REFINE", "PQIndex", "build_pq_index", "index_parameters"]

#: Partitions a query scans, and candidates re-ranked on their full vectors (in multiples of k):
#: benchmarks/vector_stores.py measures these against recall and latency at 10^7 rows.
NPROBE = 16
REFINE = 50
#: A filter that leaves at most this many rows is answered by exact search over them
#: (:meth:`skclap.retrieval.Collection.topk`), not through the index.
EXACT_BELOW = 65536


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise ImportError("the IVF-PQ index needs faiss: pip install faiss-cpu (exact search works without it)") from None
    return faiss


def index_parameters(rows: int, dim: int) -> tuple[int, int]:
    """IVF partitions and PQ sub-vectors for ``rows`` vectors of ``dim``: about ``sqrt(rows)``
    partitions (a few thousand rows each at 10^7, the balance of cells to scan against rows per
    cell that faiss's guidelines also give), and sub-vectors of 4 dimensions (a 256-d vector's code
    is 64 bytes; codes of 8 dimensions kept the true neighbours out of the candidates far more often
    in benchmarks/vector_stores.py)."""
    partitions = max(1, min(rows // 256, round(math.sqrt(rows))))
    sub = max(1, dim // 4)
    while dim % sub:
        sub -= 1
    return partitions, sub


def build_pq_index(
    directory: str | os.PathLike, partitions: int | None = None, sub_vectors: int | None = None, train_size: int = 65536, seed: int = 0
) -> Path:
    """Write ``DIR/index-ivfpq.faiss`` (parameters of :func:`index_parameters` unless given), trained
    on ``max(train_size, 64 * partitions)`` rows drawn with ``seed``, filled shard by shard; returns
    its path. The codes are held in memory while it is built (rows times sub-vectors bytes)."""
    faiss = _faiss()
    root = Path(directory)
    meta = read_meta(root)
    rows = ShardRows.of(root)
    n, dim = len(rows), rows.dim
    if n < 256:  # 8-bit codes: 256 centroids per sub-vector to train
        raise ValueError(f"{os.fspath(directory)!r} holds {n} rows; an IVF-PQ index needs 256 or more (exact search suits so few)")
    auto_p, auto_s = index_parameters(n, dim)
    partitions, sub_vectors = partitions or auto_p, sub_vectors or auto_s
    if dim % sub_vectors:
        raise ValueError(f"sub_vectors must divide the width {dim}; got {sub_vectors}")
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, max(train_size, 64 * partitions)), replace=False))
    index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, partitions, sub_vectors, 8, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.train(rows.take(sample))
    for shard in meta["shards"]:
        matrix = np.load(root / shard["npy"], mmap_mode="r")
        for a in range(0, len(matrix), 262144):
            index.add(np.ascontiguousarray(matrix[a : a + 262144], dtype=np.float32))
    path = root / PQ_INDEX_NAME
    write_atomic(path, lambda p: faiss.write_index(index, p))
    return path


def _best(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of one query's candidates, best first, equal scores by row id."""
    order = np.lexsort((ids, -scores))[:k]
    return scores[order], ids[order]


class PQIndex:
    """A collection's IVF-PQ index, memory-mapped and opened once for many queries (``nprobe``
    partitions scanned, ``refine`` times ``k`` candidates re-ranked by their full vectors)."""

    def __init__(self, directory: str | os.PathLike, nprobe: int = NPROBE, refine: int = REFINE, rows: ShardRows | None = None) -> None:
        faiss = _faiss()
        root = Path(directory)
        path = root / PQ_INDEX_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"{os.fspath(root)!r} has no {PQ_INDEX_NAME}: skclap index {os.fspath(root)} --store faiss-pq writes it"
            )
        self.rows = rows if rows is not None else ShardRows.of(root)
        try:
            self.index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError as err:
            raise OSError(f"{os.fspath(path)!r} is not a readable faiss index: {str(err).splitlines()[0]}") from None
        if self.index.ntotal != len(self.rows):
            raise ValueError(
                f"{os.fspath(path)!r} indexes {self.index.ntotal} rows but the collection has {len(self.rows)}: "
                f"rebuild it (skclap index {os.fspath(root)} --store faiss-pq)"
            )
        self.nprobe = nprobe
        self.refine = refine

    def __len__(self) -> int:
        return len(self.rows)

    def topk(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, row ids)`` of the top ``k`` rows by inner product for each query, best first,
        padded with ``-inf`` / ``-1`` where fewer rows qualify; ``allowed`` (row ids): only those."""
        faiss = _faiss()
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        selector = None  # kept here while the search runs: faiss holds only a pointer to it
        if allowed is not None:
            mask = np.zeros(len(self.rows), dtype=bool)
            mask[np.asarray(allowed, dtype=np.int64)] = True
            bits = np.packbits(mask, bitorder="little")  # faiss's bitmap: bit (i & 7) of byte i >> 3
            selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
        params = faiss.SearchParametersIVF(nprobe=self.nprobe, sel=selector) if selector else faiss.SearchParametersIVF(nprobe=self.nprobe)
        _, candidates = self.index.search(queries, min(self.refine * k, len(self.rows)), params=params)
        for i, cand in enumerate(candidates):
            cand = cand[cand >= 0]
            s, r = _best(self.rows.take(cand) @ queries[i], cand, k)
            scores[i, : len(r)], ids[i, : len(r)] = s, r
        return scores, ids
